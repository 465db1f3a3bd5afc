//! `body-template` rendering for HTTP hooks (§10, mechanism E). Placeholder until the
//! template engine is merged.

use std::path::Path;

use super::send::SendContext;

/// Renders the body template at `path` with the hook data of `ctx`.
pub(crate) fn render_body(path: &Path, _ctx: &SendContext) -> Result<String, String> {
    Err(format!(
        "body-template {} cannot be rendered yet (template engine missing)",
        path.display()
    ))
}
