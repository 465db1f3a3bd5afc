//! HTTP hooks against the recording server.

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_profile::monitor::send::{HttpSettings, SendContext, send_all};
use cairn_profile::monitor::testserver::RecordingServer;
use cairn_profile::types::{ErrorInfo, SendSpec};

fn settings() -> HttpSettings {
    HttpSettings {
        timeout: Duration::from_secs(5),
        ca_certificates: Vec::new(),
        dry_run: false,
        user_agent: "cairn/test".into(),
    }
}

fn spec(url: String) -> SendSpec {
    SendSpec {
        url,
        ..SendSpec::default()
    }
}

fn error() -> ErrorInfo {
    ErrorInfo {
        message: "backup on profile 'nidoking': exit status 3".into(),
        command_line: "\"cairn\" \"backup\" \"/a b\"".into(),
        exit_code: 3,
        stderr: "can't read /Library/x: permission denied\nsecond & last".into(),
    }
}

#[test]
fn methods_headers_and_user_agent() {
    let server = RecordingServer::start().unwrap();
    let env = BTreeMap::new();
    let ctx = SendContext {
        profile: "p",
        command: "backup",
        error: None,
        env: &env,
    };
    let specs = vec![
        spec(format!("{}/get", server.url())),
        SendSpec {
            method: "post".into(),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("X-Multi".into(), "1".into()),
                ("X-Multi".into(), "2".into()),
            ],
            body: Some("{\"a\":1}".into()),
            ..spec(format!("{}/post", server.url()))
        },
        SendSpec {
            method: "PUT".into(),
            headers: vec![("user-agent".into(), "mine/1".into())],
            ..spec(format!("{}/put", server.url()))
        },
    ];
    let warnings = send_all(&specs, &ctx, &settings());
    assert!(warnings.is_empty(), "{warnings:?}");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!((reqs[0].method.as_str(), reqs[0].path()), ("GET", "/get"));
    assert_eq!(reqs[0].header("user-agent"), Some("cairn/test"));
    assert!(reqs[0].body.is_empty());
    assert_eq!((reqs[1].method.as_str(), reqs[1].path()), ("POST", "/post"));
    assert_eq!(reqs[1].header("content-type"), Some("application/json"));
    assert_eq!(reqs[1].header_all("x-multi"), vec!["1", "2"]);
    assert_eq!(reqs[1].body_text(), "{\"a\":1}");
    assert_eq!(reqs[2].method, "PUT");
    assert_eq!(reqs[2].header_all("user-agent"), vec!["mine/1"]);
}

#[test]
fn variables_are_expanded_and_url_encoded() {
    let server = RecordingServer::start().unwrap();
    let mut env = BTreeMap::new();
    env.insert("HC_UUID".to_string(), "abc-123".to_string());
    let err = error();
    let ctx = SendContext {
        profile: "nidoking",
        command: "backup",
        error: Some(&err),
        env: &env,
    };
    let specs = vec![SendSpec {
        method: "POST".into(),
        body: Some(
            "$PROFILE_NAME/${PROFILE_COMMAND}: $ERROR (code $ERROR_EXIT_CODE) [$ERROR_COMMANDLINE] $ERROR_STDERR $$HOME $HC_UUID"
                .into(),
        ),
        ..spec(format!(
            "{}/${{HC_UUID}}/$PROFILE_NAME?cmd=$PROFILE_COMMAND&err=$ERROR&code=$ERROR_EXIT_CODE&cl=$ERROR_COMMANDLINE&se=$ERROR_STDERR&lit=$$x",
            server.url()
        ))
    }];
    let warnings = send_all(&specs, &ctx, &settings());
    assert!(warnings.is_empty(), "{warnings:?}");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.path(), "/abc-123/nidoking");
    assert_eq!(r.query_param("cmd"), Some("backup"));
    assert_eq!(
        r.query_param("err"),
        Some("backup+on+profile+%27nidoking%27%3A+exit+status+3")
    );
    assert_eq!(r.query_param("code"), Some("3"));
    assert_eq!(
        r.query_param("cl"),
        Some("%22cairn%22+%22backup%22+%22%2Fa+b%22")
    );
    assert_eq!(
        r.query_param("se"),
        Some("can%27t+read+%2FLibrary%2Fx%3A+permission+denied%0Asecond+%26+last")
    );
    assert_eq!(r.query_param("lit"), Some("$x"));
    assert_eq!(
        r.body_text(),
        "nidoking/backup: backup on profile 'nidoking': exit status 3 (code 3) [\"cairn\" \"backup\" \"/a b\"] can't read /Library/x: permission denied\nsecond & last $HOME abc-123"
    );
}

#[test]
fn server_errors_are_warnings_and_later_hooks_still_run() {
    let server = RecordingServer::start().unwrap();
    server.respond("/broken", 500, Vec::new(), Duration::ZERO);
    server.respond("/missing", 404, Vec::new(), Duration::ZERO);
    let env = BTreeMap::new();
    let ctx = SendContext {
        profile: "p",
        command: "check",
        error: None,
        env: &env,
    };
    let specs = vec![
        spec(format!("{}/broken", server.url())),
        spec(format!("{}/missing", server.url())),
        spec(format!("{}/fine", server.url())),
    ];
    let warnings = send_all(&specs, &ctx, &settings());
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("/broken"), "{}", warnings[0]);
    assert!(warnings[0].contains("HTTP 500"), "{}", warnings[0]);
    assert!(warnings[0].contains("after 3 attempts"), "{}", warnings[0]);
    assert!(warnings[1].contains("HTTP 404"), "{}", warnings[1]);
    assert!(!warnings[1].contains("attempts"), "{}", warnings[1]);
    let paths: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.path().to_string())
        .collect();
    // 500 is transient (3 tries), 404 is not (1 try).
    assert_eq!(
        paths,
        ["/broken", "/broken", "/broken", "/missing", "/fine"]
    );
}

#[test]
fn transient_failure_then_success_is_not_a_warning() {
    let server = RecordingServer::start().unwrap();
    server.reply(
        "/flaky",
        cairn_profile::monitor::testserver::Reply {
            status: 503,
            times: Some(1),
            ..Default::default()
        },
    );
    let env = BTreeMap::new();
    let ctx = SendContext {
        profile: "p",
        command: "backup",
        error: None,
        env: &env,
    };
    let warnings = send_all(
        &[spec(format!("{}/flaky", server.url()))],
        &ctx,
        &settings(),
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn dry_run_sends_nothing() {
    let server = RecordingServer::start().unwrap();
    let env = BTreeMap::new();
    let ctx = SendContext {
        profile: "p",
        command: "backup",
        error: None,
        env: &env,
    };
    let settings = HttpSettings {
        dry_run: true,
        ..settings()
    };
    let specs = vec![
        spec(format!("{}/a", server.url())),
        SendSpec {
            method: "POST".into(),
            body: Some("x".into()),
            headers: vec![("Authorization".into(), "Bearer secret".into())],
            ..spec(format!("{}/b", server.url()))
        },
    ];
    let warnings = send_all(&specs, &ctx, &settings);
    assert!(warnings.is_empty(), "{warnings:?}");
    std::thread::sleep(Duration::from_millis(50));
    assert!(server.requests().is_empty());
}

#[test]
fn warnings_mask_url_credentials() {
    let server = RecordingServer::start().unwrap();
    server.respond("/", 401, Vec::new(), Duration::ZERO);
    let env = BTreeMap::new();
    let ctx = SendContext {
        profile: "p",
        command: "backup",
        error: None,
        env: &env,
    };
    let with_creds = server.url().replace("http://", "http://alice:hunter2@");
    // A closed port: transport error after retries.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let specs = vec![
        spec(format!("{with_creds}/hook")),
        spec(format!("http://bob:pa55word@127.0.0.1:{closed}/hook")),
    ];
    let warnings = send_all(&specs, &ctx, &settings());
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("alice:×××@127.0.0.1"),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].contains("HTTP 401"), "{}", warnings[0]);
    assert!(warnings[1].contains("bob:×××@127.0.0.1"), "{}", warnings[1]);
    for w in &warnings {
        assert!(!w.contains("hunter2") && !w.contains("pa55word"), "{w}");
    }
    // The server saw the credentials as basic auth.
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert!(
        reqs[0]
            .header("authorization")
            .is_some_and(|v| v.starts_with("Basic "))
    );
}

#[test]
fn empty_url_and_bad_method_are_warnings() {
    let server = RecordingServer::start().unwrap();
    let env = BTreeMap::new();
    let ctx = SendContext {
        profile: "p",
        command: "backup",
        error: None,
        env: &env,
    };
    let specs = vec![
        spec(String::new()),
        SendSpec {
            method: "BAD METHOD".into(),
            ..spec(format!("{}/x", server.url()))
        },
        spec(format!("{}/ok", server.url())),
    ];
    let warnings = send_all(&specs, &ctx, &settings());
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn body_templates_are_rendered_with_hook_data() {
    let server = RecordingServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("body.json.tmpl");
    std::fs::write(
        &template,
        "{\"profile\":\"{{ .ProfileName }}\",\"command\":\"{{ .ProfileCommand }}\",\"error\":\"{{ .Error.Message }}\",\"code\":\"{{ .Error.ExitCode }}\",\"stdout\":\"{{ .Stdout }}\",\"tag\":\"{{ .Env.TAG | upper }}\",\"year\":{{ .Now.Year }}}\n",
    )
    .unwrap();
    let broken = dir.path().join("broken.tmpl");
    std::fs::write(&broken, "{{ .ProfileName ").unwrap();
    let mut env = BTreeMap::new();
    env.insert("TAG".to_string(), "nightly".to_string());
    let err = error();
    let ctx = SendContext {
        profile: "nidoking",
        command: "backup",
        error: Some(&err),
        env: &env,
    };
    let specs = vec![
        SendSpec {
            method: "POST".into(),
            body_template: Some(template.clone()),
            ..spec(format!("{}/template", server.url()))
        },
        SendSpec {
            method: "POST".into(),
            body: Some("literal $PROFILE_NAME".into()),
            body_template: Some(template.clone()),
            ..spec(format!("{}/literal-wins", server.url()))
        },
        SendSpec {
            body_template: Some(broken.clone()),
            ..spec(format!("{}/broken", server.url()))
        },
        SendSpec {
            body_template: Some(dir.path().join("missing.tmpl")),
            ..spec(format!("{}/missing", server.url()))
        },
    ];
    let warnings = send_all(&specs, &ctx, &settings());
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("broken.tmpl"), "{}", warnings[0]);
    assert!(warnings[1].contains("missing.tmpl"), "{}", warnings[1]);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2, "templates that fail are not sent");
    let year = chrono::Local::now().format("%Y").to_string();
    assert_eq!(
        reqs[0].body_text(),
        format!(
            "{{\"profile\":\"nidoking\",\"command\":\"backup\",\"error\":\"backup on profile 'nidoking': exit status 3\",\"code\":\"3\",\"stdout\":\"\",\"tag\":\"NIGHTLY\",\"year\":{year}}}\n"
        )
    );
    assert_eq!(reqs[1].path(), "/literal-wins");
    assert_eq!(reqs[1].body_text(), "literal nidoking");
}
