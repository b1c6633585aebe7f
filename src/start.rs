//! Where a new user starts: what the start-up banner prints and what every port's index page
//! (`/`) says. Both render one [`StartHere`], so the terminal and the browser never disagree,
//! and each says only what is true of the running mode (the sandbox routes only while they
//! exist, the demo accounts only while they are seeded).

use std::fmt::Write as _;

use axum::http::HeaderMap;
use serde_json::Value;

use crate::apis::{APIS, Api};

/// The mode a port runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `mpapi serve`: the real implementation.
    Serve,
    /// `mpapi mock`: the documented examples.
    Mock,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Serve => "serve",
            Mode::Mock => "mock",
        }
    }
}

/// What one port tells a new user. Text may hold `{base}`, the port's own URL
/// (`http://127.0.0.1:3000`): the banner writes the address it listens on, the page the address
/// the browser used, so that a command copied from either reaches this port.
#[derive(Debug, Clone)]
pub struct StartHere {
    /// The running mode.
    pub mode: Mode,
    /// Facts to begin with, one sentence each: the demo data, how examples are picked.
    pub notes: Vec<String>,
    /// First requests to try, as curl command lines.
    pub first_calls: Vec<String>,
    /// The active `/_sandbox/*` routes: (method and path, what it does).
    pub sandbox: Vec<(&'static str, &'static str)>,
    /// The other APIs this process serves, with their ports.
    pub neighbours: Vec<(&'static str, u16)>,
    /// The APIs this mode cannot serve (serve: no real implementation yet), with the ports they
    /// would have and the command that serves their examples there.
    pub elsewhere: Option<Elsewhere>,
}

/// APIs served by another command on the ports beside this process.
#[derive(Debug, Clone)]
pub struct Elsewhere {
    /// Why they are not here (`no real implementation yet`).
    pub why: &'static str,
    /// The APIs and their ports.
    pub apis: Vec<(&'static str, u16)>,
    /// The command that serves them (`mpapi mock --api points …`).
    pub command: String,
}

impl StartHere {
    /// Nothing to say yet in `mode`.
    pub fn new(mode: Mode) -> StartHere {
        StartHere { mode, notes: Vec::new(), first_calls: Vec::new(), sandbox: Vec::new(), neighbours: Vec::new(), elsewhere: None }
    }

    /// The banner's lines for a port reached at `base`, indented under the API's own line.
    pub fn lines(&self, base: &str) -> Vec<String> {
        let mut lines: Vec<String> = self.notes.iter().map(|n| n.replace("{base}", base)).collect();
        // Labels on the first line of a group only, so the commands and routes line up.
        let labelled = |label: &str, i: usize| if i == 0 { label.to_owned() } else { " ".repeat(label.chars().count()) };
        for (i, call) in self.first_calls.iter().enumerate() {
            lines.push(format!("{}{}", labelled("try: ", i), call.replace("{base}", base)));
        }
        for (i, (route, what)) in self.sandbox.iter().enumerate() {
            lines.push(format!("{}{route} — {what}", labelled("sandbox: ", i)));
        }
        lines
    }

    /// The line about the APIs served elsewhere, for the banner (once per start, not per API).
    pub fn elsewhere_line(&self) -> Option<String> {
        self.elsewhere.as_ref().map(|e| {
            let apis: Vec<String> = e.apis.iter().map(|(id, port)| format!("{id} {port}")).collect();
            format!("{}: {} — `{}` serves their examples beside this server", e.why, apis.join(", "), e.command)
        })
    }

    /// The index page of `api` (titled `title`), answering a request with these `headers`.
    pub fn page(&self, api: Api, title: &str, headers: &HeaderMap) -> String {
        let host = request_host(headers);
        let hostname = hostname(&host);
        let base = format!("http://{host}");
        let title = escape(title);
        let mut html = format!(
            "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{title} · mpapi</title></head><body>\
             <h1>{title}</h1><p>mpapi {mode} · API <code>{id}</code></p>\
             <ul><li><a href=\"/docs\">Swagger UI</a></li><li><a href=\"/openapi.json\">/openapi.json</a></li></ul>",
            mode = self.mode.name(),
            id = api.id,
        );
        html.push_str("<h2>Start here</h2>");
        if !self.notes.is_empty() {
            html.push_str("<ul>");
            for note in &self.notes {
                let _ = write!(html, "<li>{}</li>", escape(&note.replace("{base}", &base)));
            }
            html.push_str("</ul>");
        }
        if !self.first_calls.is_empty() {
            let calls: Vec<String> = self.first_calls.iter().map(|c| escape(&c.replace("{base}", &base))).collect();
            let _ = write!(html, "<p>Try:</p><pre>{}</pre>", calls.join("\n"));
        }
        if !self.sandbox.is_empty() {
            html.push_str("<h2>Sandbox</h2><ul>");
            for (route, what) in &self.sandbox {
                let _ = write!(html, "<li><code>{}</code> — {}</li>", escape(route), escape(what));
            }
            html.push_str("</ul>");
        }
        if !self.neighbours.is_empty() || self.elsewhere.is_some() {
            html.push_str("<h2>Other ports</h2><ul>");
            for (id, port) in &self.neighbours {
                let _ = write!(html, "<li><a href=\"http://{hostname}:{port}/\">{id}</a> (port {port})</li>");
            }
            if let Some(e) = &self.elsewhere {
                let apis: Vec<String> = e.apis.iter().map(|(id, port)| format!("{id} (port {port})")).collect();
                let _ = write!(
                    html,
                    "<li>{}: {} — <code>{}</code> serves their examples beside this server</li>",
                    escape(e.why),
                    apis.join(", "),
                    escape(&e.command)
                );
            }
            html.push_str("</ul>");
        }
        html.push_str("</body></html>");
        html
    }
}

/// The host the request was sent to (`127.0.0.1:3000`), when it is a plain host name or address
/// with a port; `127.0.0.1` otherwise. It goes into links and commands on the page, so anything
/// that is not a host name, an IPv4 or a bracketed IPv6 address is not trusted.
fn request_host(headers: &HeaderMap) -> String {
    headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.len() <= 255)
        .filter(|h| h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)))
        .unwrap_or("127.0.0.1")
        .to_owned()
}

/// `host` without its port (`[::1]:3000` → `[::1]`).
fn hostname(host: &str) -> &str {
    match host.strip_prefix('[') {
        Some(rest) => rest.find(']').map_or(host, |end| &host[..end + 2]),
        None => host.split(':').next().unwrap_or(host),
    }
}

/// Text as HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The port base of a process in which `api` listens on `port`.
pub fn port_base(api: Api, port: u16) -> u16 {
    port.saturating_sub(api.offset)
}

/// The command serving `apis`' examples on the ports of `port_base` (`mpapi mock --api points …`).
pub fn mock_command(apis: &[&str], port_base: u16) -> String {
    let mut command = String::from("mpapi mock");
    for id in apis {
        let _ = write!(command, " --api {id}");
    }
    if port_base != crate::cli::DEFAULT_PORT_BASE {
        let _ = write!(command, " --port-base {port_base}");
    }
    command
}

/// Mock mode's start for `api`, in a process serving `served` (every API with its port).
pub fn mock(api: Api, served: &[(Api, u16)]) -> StartHere {
    let mut start = StartHere::new(Mode::Mock);
    start.notes = vec![
        "Every operation answers its first 2xx example; the X-Mpapi-Example response header names the example used.".into(),
        "Pick another with the request header Prefer: example=NAME (or code=STATUS, delay=MS), or the query parameter __example=NAME (__code, __delay). Swagger UI lists the names under each response; an unknown name is answered with the list.".into(),
    ];
    if let Some((path, example)) = example_to_pick(api) {
        start.first_calls.push(format!("curl -si -H 'Prefer: example={example}' {{base}}{path}"));
    }
    start.neighbours = served.iter().filter(|(other, _)| other.id != api.id).map(|(other, port)| (other.id, *port)).collect();
    start
}

/// An operation of `api` anyone can call with a bare GET (no credential, no parameter) and that
/// has an example besides its default: (path, that example's name).
fn example_to_pick(api: Api) -> Option<(&'static str, &'static str)> {
    let document = (api.published)();
    // Security as OpenAPI states it: the operation's own, else the document's; none, an empty
    // list or an empty requirement lets anyone call.
    let open = |security: &Value| {
        security.is_null() || security.as_array().is_some_and(|s| s.is_empty() || s.iter().any(|r| r.as_object().is_some_and(|r| r.is_empty())))
    };
    (api.operations)().into_iter().find_map(|(method, path, id)| {
        if method != "GET" || path.contains('{') {
            return None;
        }
        let operation = &document["paths"][path]["get"];
        let anyone = open(operation.get("security").unwrap_or(&document["security"]));
        // A referenced parameter may be required: not a bare GET then.
        let bare = operation["parameters"].as_array().is_none_or(|ps| ps.iter().all(|p| p["required"] != Value::Bool(true) && p.get("$ref").is_none()));
        if !(anyone && bare) {
            return None;
        }
        api.examples.iter().find(|e| e.operation_id == id && !e.is_default).map(|e| (path, e.name))
    })
}

/// The APIs of [`APIS`] that `keep` keeps, with their ports under `port_base`.
pub fn ports_of(port_base: u16, keep: impl Fn(&Api) -> bool) -> Vec<(&'static str, u16)> {
    APIS.iter().filter(|a| keep(a)).map(|a| (a.id, port_base.saturating_add(a.offset))).collect()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::header::HOST, HeaderValue::from_str(host).unwrap());
        headers
    }

    #[test]
    fn the_page_uses_the_host_the_browser_used_and_trusts_nothing_else() {
        let api = crate::apis::by_id("heating").unwrap();
        let mut start = StartHere::new(Mode::Serve);
        start.first_calls.push("curl -s {base}/health".into());
        start.neighbours.push(("points", 3001));
        let page = start.page(api, "热力 <API>", &headers("192.168.1.5:3000"));
        assert!(page.contains("<pre>curl -s http://192.168.1.5:3000/health</pre>"), "{page}");
        assert!(page.contains("href=\"http://192.168.1.5:3001/\""), "{page}");
        assert!(page.contains("热力 &lt;API&gt;") && !page.contains("<API>"), "{page}");
        let page = start.page(api, "t", &headers("[::1]:3000"));
        assert!(page.contains("http://[::1]:3000/health") && page.contains("http://[::1]:3001/"), "{page}");
        for hostile in ["evil.com/\"><script>", "a@b:3000", "x'y"] {
            let page = start.page(api, "t", &headers(hostile));
            assert!(page.contains("http://127.0.0.1/health"), "{hostile}: {page}");
        }
        assert!(start.page(api, "t", &HeaderMap::new()).contains("http://127.0.0.1/health"));
    }

    #[test]
    fn sections_appear_only_with_something_in_them() {
        let api = crate::apis::by_id("heating").unwrap();
        let page = StartHere::new(Mode::Mock).page(api, "t", &HeaderMap::new());
        assert!(page.contains("mpapi mock") && !page.contains("Sandbox") && !page.contains("Other ports"), "{page}");
        let mut start = StartHere::new(Mode::Serve);
        start.sandbox.push(("GET /_sandbox/sms?phone=NUMBER", "codes"));
        start.elsewhere = Some(Elsewhere { why: "no real implementation yet", apis: vec![("points", 3001)], command: mock_command(&["points"], 3000) });
        let page = start.page(api, "t", &HeaderMap::new());
        assert!(page.contains("<code>GET /_sandbox/sms?phone=NUMBER</code> — codes"), "{page}");
        assert!(page.contains("points (port 3001) — <code>mpapi mock --api points</code>"), "{page}");
        assert_eq!(start.elsewhere_line().unwrap(), "no real implementation yet: points 3001 — `mpapi mock --api points` serves their examples beside this server");
        assert_eq!(mock_command(&["points", "o2o"], 4500), "mpapi mock --api points --api o2o --port-base 4500");
    }

    #[test]
    fn mock_mode_names_an_example_to_pick_where_a_bare_get_has_one() {
        // Heating and points have an open GET without parameters and with a second example;
        // community has no GET without a path parameter, o2o secures every operation.
        let by_id = |id| crate::apis::by_id(id).unwrap();
        assert_eq!(example_to_pick(by_id("heating")), Some(("/api/config/agreements", "rate_limited")));
        assert!(example_to_pick(by_id("points")).is_some_and(|(path, _)| path.starts_with("/api/v1/system/")));
        assert_eq!(example_to_pick(by_id("community")), None);
        assert_eq!(example_to_pick(by_id("o2o")), None);
    }
}
