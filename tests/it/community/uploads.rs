//! 2.3 附件上传: face photos (JPEG or PNG by their bytes, under an existing house's address,
//! stored privately and served only through signed, expiring URLs; a form may use only the
//! caller's own upload) and the ID card read by OCR.

use base64::Engine as _;
use serde_json::json;

use super::*;

#[tokio::test]
async fn people_photo_upload_stores_jpeg_and_png_behind_signed_urls() {
    let app = TestApp::community().await;
    let token = token(&app, DEMO_CODE).await;
    for (bytes, name, extension, content_type) in
        [(jpeg(3000, 1), "face.jpg", ".jpg", "image/jpeg"), (png(3000), "misnamed.jpg", ".png", "image/png")]
    {
        let reply = upload(&app, &token, bytes.clone(), name, 6).await;
        assert_eq!((reply.status, reply.flat_code(), reply.body["msg"].as_str()), (200, 0, Some("图片上传成功")), "{}", reply.body);
        let url = reply.body["data"].as_str().unwrap();
        let path = url.split('?').next().unwrap();
        assert!(path.starts_with(&app.url("/files/face-photo/1/3/2/4/401/")) && path.ends_with(extension), "{url}");
        let served = app.client.get(url).send().await.unwrap();
        assert_eq!(served.status(), 200);
        assert_eq!(served.headers()["content-type"], content_type);
        assert_eq!(served.bytes().await.unwrap().as_ref(), bytes.as_slice());
    }
}

/// With `apis.community.public_url` set and no `files.public_base_url`, file URLs start at
/// the API's public address too; `files.public_base_url`, when set, wins.
#[tokio::test]
async fn file_urls_start_at_the_public_url_unless_the_files_say_otherwise() {
    let app = community_at("https://community.example.com/", None).await;
    let owner = token(&app, DEMO_CODE).await;
    let reply = upload(&app, &owner, jpeg(3000, 2), "face.jpg", 6).await;
    let url = reply.body["data"].as_str().unwrap_or_else(|| panic!("{}", reply.body));
    assert!(url.starts_with("https://community.example.com/files/face-photo/1/3/2/4/401/"), "{url}");
    let app = community_at("https://community.example.com", Some("https://files.example.com")).await;
    let owner = token(&app, DEMO_CODE).await;
    let reply = upload(&app, &owner, jpeg(3000, 3), "face.jpg", 6).await;
    let url = reply.body["data"].as_str().unwrap_or_else(|| panic!("{}", reply.body));
    assert!(url.starts_with("https://files.example.com/files/face-photo/"), "the files' own base: {url}");
}

#[tokio::test]
async fn signed_urls_refuse_tampering_and_expire() {
    let app = TestApp::community().await;
    let token = token(&app, DEMO_CODE).await;
    let url = photo(&app, &token, 1).await;
    let (path, query) = url.split_once('?').unwrap();
    let params: std::collections::HashMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let (expires, signature) = (&params["expires"], &params["signature"]);
    let mut flipped = signature.clone().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    let later: i64 = expires.parse::<i64>().unwrap() + 3600;
    let other = photo(&app, &token, 1).await;
    let other_path = other.split('?').next().unwrap();
    for tampered in [
        format!("{path}?expires={expires}&signature={flipped}"),
        format!("{path}?expires={later}&signature={signature}"),
        format!("{other_path}?expires={expires}&signature={signature}"),
        path.to_owned(),
    ] {
        let status = app.client.get(&tampered).send().await.unwrap().status();
        assert_eq!(status, 403, "{tampered}");
    }
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 200);
    app.server.clock.advance(std::time::Duration::from_secs(3601));
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 403, "expired");
}

#[tokio::test]
async fn people_photo_upload_refuses_what_is_not_a_photo_of_a_house() {
    let app = TestApp::community().await;
    let token = token(&app, DEMO_CODE).await;
    let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec();
    for (bytes, what) in [(gif, "a GIF"), (b"<html>not an image</html>".to_vec(), "text"), (Vec::new(), "nothing")] {
        let reply = upload(&app, &token, bytes, "face.jpg", 1).await;
        assert_eq!((reply.status, reply.flat_code()), (400, 1), "{what}: {}", reply.body);
    }
    // An address with no house.
    let nowhere = upload_at(&app, &token, jpeg(2048, 1), "face.jpg", [1, 1, 1, 1, 999]).await;
    assert_eq!((nowhere.status, nowhere.body["msg"].as_str()), (400, Some("房屋不存在")), "{}", nowhere.body);
    // Without the file part or a field: the router refuses in the envelope.
    let form = reqwest::multipart::Form::new().text("community_identifier", "1");
    let missing = app.post_multipart(PHOTO, Some(&token), form).await;
    assert_eq!((missing.status, missing.flat_code()), (400, 1), "{}", missing.body);
    // The address without the file: the document's own words for it (2.3.1.4 示例2).
    let names = ["community_identifier", "building_number", "unit_number", "floor_number", "house_number"];
    let form = names.into_iter().zip(["1", "1", "1", "1", "101"]).fold(reqwest::multipart::Form::new(), |form, (name, value)| form.text(name, value));
    let no_file = app.post_multipart(PHOTO, Some(&token), form).await;
    assert_eq!(
        (no_file.status, no_file.flat_code(), no_file.body["msg"].as_str(), no_file.body["message"].as_str()),
        (400, 1, Some("没有传递任何文件到后台"), Some("传递的file为空")),
        "{}",
        no_file.body
    );
    // Without a token.
    let part = reqwest::multipart::Part::bytes(jpeg(2048, 1)).file_name("face.jpg");
    let anonymous = app.post_multipart(PHOTO, None, reqwest::multipart::Form::new().part("file", part)).await;
    assert_eq!((anonymous.status, anonymous.flat_code()), (401, 9), "{}", anonymous.body);
}

#[tokio::test]
async fn people_photo_upload_refuses_files_over_the_limit() {
    let app = TestApp::community_with(|config| config.apis.get_mut("community").unwrap().files.max_bytes = 4096).await;
    let token = token(&app, DEMO_CODE).await;
    assert_eq!(upload(&app, &token, jpeg(4096, 1), "face.jpg", 1).await.status, 200);
    let big = upload(&app, &token, jpeg(4097, 1), "face.jpg", 1).await;
    assert_eq!((big.status, big.flat_code()), (400, 1), "{}", big.body);
}

#[tokio::test]
async fn a_form_takes_only_the_callers_own_upload() {
    let app = TestApp::community().await;
    let owner = token(&app, DEMO_CODE).await;
    let theirs = photo(&app, &owner, 2).await;
    let phone = "13812340021";
    let newcomer = new_user(&app, "wx-photo", phone, "吴新").await;
    let idcard = id_number("13030219900101003");
    for photo in [theirs.as_str(), "https://100k.mgg.cool/wjdh-platform/face-photo/1/2/3/4/401/202011/21/Qhn.png"] {
        let refused = app.post(SUBMIT, Some(&newcomer), form(phone, &idcard, "吴新", photo, 2, json!("业主"), 1)).await;
        assert_eq!((refused.status, refused.body["msg"].as_str()), (400, Some("请重新上传人脸照片")), "{}", refused.body);
    }
    let mine = super::photo(&app, &newcomer, 2).await;
    let filed = app.post(SUBMIT, Some(&newcomer), form(phone, &idcard, "吴新", &mine, 2, json!("业主"), 1)).await;
    assert_eq!((filed.status, filed.flat_code()), (200, 0), "{}", filed.body);
}

#[tokio::test]
async fn idcard_photo_recognize_reads_a_fictional_identity_or_asks_for_a_clearer_photo() {
    let app = TestApp::community().await;
    let token = token(&app, DEMO_CODE).await;
    let read = idcard(&app, &token, &jpeg(2048, 9)).await;
    assert_eq!((read.status, read.flat_code(), read.body["msg"].as_str()), (200, 0, Some("获取信息成功！")), "{}", read.body);
    let data = &read.body["data"];
    let number = data["idcard"].as_str().unwrap();
    assert_eq!(number, id_number(&number[..17]), "a valid ID number: {data}");
    assert_eq!(data["birthday"].as_str().unwrap(), &number[6..14]);
    // The same image reads the same.
    assert_eq!(idcard(&app, &token, &jpeg(2048, 9)).await.body["data"], *data);
    // Too small to read: the photo's fault (400), in the document's words.
    let blurry = idcard(&app, &token, &jpeg(1023, 9)).await;
    assert_eq!((blurry.status, blurry.flat_code()), (400, 1), "{}", blurry.body);
    assert_eq!(blurry.body["msg"], "扫描失败，请重新上传更加清晰的照片或者手动填写个人信息");
    // Not base64, or empty.
    for image in ["@@not base64@@", ""] {
        let bad = app.post(IDCARD, Some(&token), json!({ "image": image })).await;
        assert_eq!((bad.status, bad.flat_code()), (400, 1), "{image:?}: {}", bad.body);
    }
    // Not sent at all: the document's words (2.3.2.4 示例2), as for an empty one.
    let absent = app.post(IDCARD, Some(&token), json!({})).await;
    assert_eq!((absent.status, absent.flat_code(), absent.body["msg"].as_str()), (400, 1, Some("没有传递image的base64码")), "{}", absent.body);
    // A data: URL is read as its base64 part.
    let data_url = format!("data:image/jpeg;base64,{}", base64::engine::general_purpose::STANDARD.encode(jpeg(2048, 9)));
    assert_eq!(app.post(IDCARD, Some(&token), json!({ "image": data_url })).await.body["data"], *data);
}

#[tokio::test]
async fn idcard_photo_recognize_answers_an_ocr_outage_with_502() {
    let ocr = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(403).insert_header("X-Ca-Error-Message", "Quota Exhausted"))
        .expect(1)
        .mount(&ocr)
        .await;
    let app = TestApp::community_with(|config| {
        config.apis.get_mut("community").unwrap().ocr =
            mpapi::config::OcrConfig { provider: mpapi::config::ProviderKind::Real, base_url: ocr.uri(), appcode: Some("test-appcode".into()) };
    })
    .await;
    let token = token(&app, DEMO_CODE).await;
    let failed = idcard(&app, &token, &jpeg(2048, 9)).await;
    assert_eq!((failed.status, failed.flat_code()), (502, 1), "{}", failed.body);
    assert_eq!((failed.body["msg"].as_str(), failed.body["message"].as_str()), (Some("扫描失败，请重新上传更加清晰的照片或者手动填写个人信息"), Some("照片模糊，或者是接口欠费了")));
    assert!(!failed.body.to_string().contains("test-appcode"), "{}", failed.body);
}
