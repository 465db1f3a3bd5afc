//! `body-template` rendering for HTTP hooks (§10, mechanism E): a Go template file rendered
//! with the hook data at send time.

use std::collections::BTreeMap;
use std::path::Path;

use cairn_template::{RuntimeFuncs, Value};

use super::send::SendContext;

/// Reads and renders the body template at `path`; the error text names the file.
pub(crate) fn render_body(
    path: &Path,
    ctx: &SendContext,
    funcs: &dyn RuntimeFuncs,
) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read body-template {}: {e}", path.display()))?;
    let name = path.display().to_string();
    cairn_template::render(&name, &text, &body_template_data(ctx), funcs)
        .map_err(|e| format!("body-template error: {e}"))
}

/// The data of a body template: `.ProfileName`, `.ProfileCommand`,
/// `.Error.{Message,CommandLine,ExitCode,Stderr}` (empty strings without an error), `.Stdout`
/// (always empty, as in resticprofile), and `.Now`, `.Env`, `.Hostname`, `.OS`, `.Arch`,
/// `.TempDir`, `.CurrentDir`, `.BinaryDir` as in configuration templates.
pub fn body_template_data(ctx: &SendContext) -> Value {
    let error = ctx.error;
    let text = |f: fn(&crate::types::ErrorInfo) -> String| error.map(f).unwrap_or_default();
    let error_value = Value::map([
        ("Message", Value::str(text(|e| e.message.clone()))),
        ("CommandLine", Value::str(text(|e| e.command_line.clone()))),
        ("ExitCode", Value::str(text(|e| e.exit_code.to_string()))),
        ("Stderr", Value::str(text(|e| e.stderr.clone()))),
    ]);
    let mut env: BTreeMap<String, Value> = BTreeMap::new();
    for (k, v) in std::env::vars() {
        env.insert(k, Value::str(v));
    }
    for (k, v) in ctx.env {
        env.insert(k.clone(), Value::str(v.clone()));
    }
    let upper: Vec<(String, Value)> = env
        .iter()
        .map(|(k, v)| (k.to_uppercase(), v.clone()))
        .collect();
    for (k, v) in upper {
        env.entry(k).or_insert(v);
    }
    let slashes = |p: std::path::PathBuf| p.to_string_lossy().replace('\\', "/");
    let temp_dir = std::env::var("TMPDIR")
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "/tmp".into());
    let current_dir = std::env::current_dir().map(slashes).unwrap_or_default();
    let binary_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()))
        .map(slashes)
        .unwrap_or_default();
    Value::map([
        ("ProfileName", Value::str(ctx.profile)),
        ("ProfileCommand", Value::str(ctx.command)),
        ("Error", error_value),
        ("Stdout", Value::str("")),
        ("Now", Value::Time(chrono::Local::now().fixed_offset())),
        ("Env", Value::Map(env)),
        ("Hostname", Value::str(hostname())),
        ("OS", Value::str(go_os())),
        ("Arch", Value::str(go_arch())),
        ("TempDir", Value::str(temp_dir.replace('\\', "/"))),
        ("CurrentDir", Value::str(current_dir)),
        ("BinaryDir", Value::str(binary_dir)),
    ])
}

/// The OS host name, `localhost` when it cannot be read.
fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Go's `runtime.GOOS` spelling of the target OS.
fn go_os() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

/// Go's `runtime.GOARCH` spelling of the target architecture.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ErrorInfo;

    #[test]
    fn data_has_resticprofiles_fields() {
        let mut env = BTreeMap::new();
        env.insert("hc_key".to_string(), "k".to_string());
        let error = ErrorInfo {
            message: "m".into(),
            command_line: "c".into(),
            exit_code: 3,
            stderr: "s".into(),
        };
        let ctx = SendContext {
            profile: "p",
            command: "backup",
            error: Some(&error),
            env: &env,
        };
        let funcs = cairn_template::PrivateTemp::new();
        let out = cairn_template::render(
            "t",
            "{{ .ProfileName }} {{ .ProfileCommand }} {{ .Error.Message }} {{ .Error.CommandLine }} {{ .Error.ExitCode }} {{ .Error.Stderr }} [{{ .Stdout }}] {{ .Env.hc_key }}{{ .Env.HC_KEY }} {{ .OS }} {{ .Now.Year }}",
            &body_template_data(&ctx),
            &funcs,
        )
        .unwrap();
        let year = chrono::Local::now().format("%Y").to_string();
        assert_eq!(out, format!("p backup m c 3 s [] kk {} {year}", go_os()));
        let ctx = SendContext { error: None, ..ctx };
        let out = cairn_template::render(
            "t",
            "[{{ .Error.Message }}|{{ .Error.ExitCode }}]",
            &body_template_data(&ctx),
            &funcs,
        )
        .unwrap();
        assert_eq!(out, "[|]");
    }
}
