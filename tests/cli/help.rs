//! Every command explains itself.

use crate::{aifactory, text};

#[test]
fn every_command_has_help() {
    for (args, needle) in [
        (vec!["--help"], "aifactory demo"),
        (vec!["demo", "--help"], "reference plant"),
        (vec!["sim", "--help"], "--policy"),
        (vec!["plant", "check", "--help"], "file:line:col"),
        (vec!["bench", "twin", "--help"], "events per second"),
        (vec!["schedule", "--help"], "--time-limit"),
        (vec!["bench", "policies", "--help"], "--seeds"),
    ] {
        let out = aifactory(&args);
        assert!(out.status.success(), "{args:?}");
        assert!(
            text(&out.stdout).contains(needle),
            "{args:?}: {}",
            text(&out.stdout)
        );
    }
}
