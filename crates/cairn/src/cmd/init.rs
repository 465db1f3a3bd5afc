//! `cairn init`.

use crate::cli::{GlobalOpts, InitArgs};
use crate::open::{self, RepoLocation};
use anyhow::{Result, bail};
use cairn_repo::chunker::Pol;
use cairn_repo::repository::{InitOptions, Repository};

pub fn run(g: &GlobalOpts, a: &InitArgs) -> Result<()> {
    let version = match a.repository_version.as_str() {
        "1" => 1,
        "2" | "latest" | "stable" => 2,
        v => bail!("unsupported repository version {v:?}: use 1, 2 or latest"),
    };
    let loc = open::location(g)?;
    let (path, default) = match &loc {
        RepoLocation::Explicit(s) => (s.clone(), None),
        RepoLocation::Default(d) => (d.repo.display().to_string(), Some(d.clone())),
    };
    let pol = if a.copy_chunker_params {
        let src = super::copy::open_from(g, &a.from)?;
        Some(Pol(src.config().chunker_polynomial))
    } else if a.from.location_given() {
        bail!("a source repository (--from-repo) may only be given with --copy-chunker-params");
    } else {
        None
    };
    let pw = if let Some(d) = &default {
        if !d.password_file.exists()
            && g.password_file.is_none()
            && g.password_command.is_none()
            && open::env("PASSWORD").is_none()
        {
            // The default repository is created with a generated password.
            let repo = open::open_or_create_default(g, g.quiet || g.json)?;
            return report(g, &path, &repo);
        }
        open::password(g, &loc, true)?
    } else {
        open::password(g, &loc, true)?
    };
    if pw.is_empty() && !g.insecure_no_password {
        bail!(
            "an empty password is not allowed by default; pass --insecure-no-password to use one"
        );
    }
    if default.is_some() {
        std::fs::create_dir_all(&path)?;
    }
    let repo = Repository::init(
        open::backend_for(g, &path)?,
        &pw,
        InitOptions {
            version,
            chunker_polynomial: pol,
            ..Default::default()
        },
    )?;
    report(g, &path, &repo)
}

fn report(g: &GlobalOpts, path: &str, repo: &Repository) -> Result<()> {
    if g.json {
        crate::output::json_line(&serde_json::json!({
            "message_type": "initialized", "id": repo.config().id, "repository": path,
        }));
    } else if !g.quiet {
        println!(
            "created restic repository {} at {path}",
            &repo.config().id[..10.min(repo.config().id.len())]
        );
        println!();
        println!("Please note that knowledge of your password is required to access");
        println!("the repository. Losing your password means that your data is");
        println!("irrecoverably lost.");
    }
    Ok(())
}
