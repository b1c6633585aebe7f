//! The README as a reader follows it: its walk of the document's journey, pasted into bash
//! against a fresh server, and its configuration example, loaded as the server loads it.

use mpapi::config::{Config, Environment, ProviderKind};
use xtask::spec::workspace_root;

use crate::app::TestApp;

/// The first ```` ```lang ```` block after the line `heading` in README.md.
fn readme_block(heading: &str, lang: &str) -> String {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("README.md");
    let section = &readme[readme.find(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("{heading} in README.md"))..];
    let open = format!("```{lang}\n");
    let start = section.find(&open).unwrap_or_else(|| panic!("a {lang} block under {heading}")) + open.len();
    let end = start + section[start..].find("```").expect("a closed block");
    section[start..end].to_owned()
}

#[tokio::test]
async fn the_walk_pays_the_demo_bill_on_a_fresh_database() {
    // The walk is for a reader's shell; a machine without curl cannot run it (cargo test needs
    // none of it otherwise).
    if std::process::Command::new("curl").arg("--version").output().is_err() {
        eprintln!("the README walk was not run: no curl on this machine");
        return;
    }
    let walk = readme_block("### Walk the document's journey", "sh");
    // Pasted into an interactive bash, `!` in double quotes would expand history.
    assert!(!walk.contains('!'), "the walk must paste into an interactive bash");
    let app = TestApp::heating().await;
    let walk = walk.replacen("BASE=http://127.0.0.1:3000\n", &format!("BASE={}\n", app.url("")), 1);
    assert!(walk.contains(&app.url("")), "the walk starts by setting BASE=http://127.0.0.1:3000");
    let output = tokio::task::spawn_blocking(move || std::process::Command::new("bash").arg("-c").arg(walk).output())
        .await
        .expect("bash ran")
        .expect("bash starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let answers: Vec<&str> = stdout.lines().collect();
    let wanted = [
        r#""message":"验证码发送成功""#,
        "code: ",
        r#""message":"登录成功""#,
        r#""phone":"13800138000""#,
        r#""message":"绑定成功""#,
        r#""total_late_fee":"#,
        "amount: ",
        r#""message":"订单创建成功""#,
        r#""result":"success""#,
        r#""status":"paid""#,
        r#""total":3"#,
    ];
    // In this order, each on a line of its own answer.
    let mut rest = answers.iter();
    for want in wanted {
        assert!(rest.any(|line| line.contains(want)), "{want} missing (or out of order) in:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    }
    assert!(output.status.success() && output.stderr.is_empty(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn the_configuration_example_is_fit_for_production() {
    let example = readme_block("### Configuration", "toml");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mpapi.toml");
    std::fs::write(&file, example).unwrap();
    let config = Config::load(Some(&file)).expect("the example loads");
    assert_eq!(config.env, Environment::Production);
    let heating = config.api("heating");
    assert_eq!((heating.wechat_pay.provider, heating.wechat_login.provider), (ProviderKind::Real, ProviderKind::Real));
    assert_eq!(config.sms.templates.get("register").map(String::as_str), Some("SMS_000000002"));
    assert_eq!(config.production_problems(&["heating"]), Vec::<String>::new());
}
