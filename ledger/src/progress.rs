//! Progress bars for long commands (export, verify, report, bulk import),
//! shared by `vigil` and `vigil-verify`: one style, rates as plain integers
//! per second. indicatif draws them on stderr only when it is a terminal,
//! so scripts and pipes see nothing of them.

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// A bar for `total` items named `unit` (0: set later with `set_length`),
/// labelled with the message `what`.
pub fn bar(what: &str, unit: &str, total: u64) -> ProgressBar {
    let template = format!("{{msg}} {{bar:40}} {{pos}}/{{len}} {unit} ({{rate}}/s, eta {{eta}})");
    let style = ProgressStyle::with_template(&template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key(
            "rate",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}", state.per_sec().max(0.0) as u64);
            },
        );
    let bar = ProgressBar::new(total).with_style(style);
    bar.set_message(what.to_string());
    bar
}
