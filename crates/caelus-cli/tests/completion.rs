//! `caelus completion bash` does what a user sources it for: after loading it into a
//! real bash, pressing Tab completes commands, subcommands and flags.

use std::process::Command;

mod support;

use support::CAELUS;

/// What bash's completion offers for `line` (words separated by spaces; the last
/// one is being typed, empty for "after a space"), after sourcing the script.
fn complete(line: &[&str]) -> Vec<String> {
    let words = line
        .iter()
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(" ");
    // Called as bash calls a `complete -F` function: (command, current word, previous word).
    let script = format!(
        r#"source <({CAELUS} completion bash) || exit 10
fn=$(complete -p caelus | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
[ -n "$fn" ] || exit 11
COMP_WORDS=({words})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
prev=""
(( COMP_CWORD > 0 )) && prev="${{COMP_WORDS[COMP_CWORD-1]}}"
"$fn" caelus "${{COMP_WORDS[COMP_CWORD]}}" "$prev"
printf '%s\n' "${{COMPREPLY[@]}}""#
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bash exited {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn sourced_bash_completion_completes_commands_subcommands_and_flags() {
    assert_eq!(complete(&["caelus", "dep"]), ["deployment"]);
    assert_eq!(complete(&["caelus", "deployment", "conn"]), ["connection"]);
    let contexts = complete(&["caelus", "context", ""]);
    for sub in ["list", "use", "current"] {
        assert!(contexts.iter().any(|c| c == sub), "{contexts:?}");
    }
    assert_eq!(
        complete(&["caelus", "deployment", "list", "--wat"]),
        ["--watch"]
    );
    let shells = complete(&["caelus", "completion", ""]);
    for shell in ["bash", "zsh", "fish"] {
        assert!(shells.iter().any(|c| c == shell), "{shells:?}");
    }
}
