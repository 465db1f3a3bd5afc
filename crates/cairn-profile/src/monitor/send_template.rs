//! `body-template` rendering for HTTP hooks (§10, mechanism E): a Go template file rendered
//! with the hook data at send time.

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
    // The process values of configuration templates, with the profile environment on top.
    let mut process = crate::config::RenderContext::from_process();
    process
        .env
        .extend(ctx.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut values = crate::config::render::context_values(&process);
    values.remove("StartupDir");
    for (k, v) in [
        ("ProfileName", Value::str(ctx.profile)),
        ("ProfileCommand", Value::str(ctx.command)),
        ("Error", error_value),
        ("Stdout", Value::str("")),
    ] {
        values.insert(k.to_string(), v);
    }
    Value::Map(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ErrorInfo;
    use std::collections::BTreeMap;

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
        assert_eq!(
            out,
            format!(
                "p backup m c 3 s [] kk {} {year}",
                crate::config::render::go_os(std::env::consts::OS)
            )
        );
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
