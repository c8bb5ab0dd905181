//! The `corvid` binary end to end: exit codes, configuration errors, and the user commands on a
//! real embedded store in a temporary folder.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs the binary in `dir` with `args`, the given environment (and no inherited `CORVID…`
/// variables), and `stdin` as its standard input.
fn corvid(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_corvid"));
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CORVID") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    let mut child = command.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
}

/// A temporary folder holding a store, and the environment that points the binary at it.
struct Sandbox {
    dir: tempfile::TempDir,
    data: String,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data").display().to_string();
        Self { dir, data }
    }

    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let env = [
            ("CORVID__STORAGE__PATH", self.data.as_str()),
            ("CORVID__SERVER__DOMAINS", "localhost,capulet.example"),
            ("CORVID__AUTH__SCRAM_ITERATIONS", "4096"),
        ];
        corvid(self.dir.path(), args, &env, stdin)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

#[test]
fn unknown_key_in_the_file_exits_64_naming_the_key() {
    let sandbox = Sandbox::new();
    let config = sandbox.write("corvid.toml", "version = 1\n[c2s]\nbogus = 1\n");
    let output = sandbox.run(&["--config", &config, "user", "list"], "");
    assert_exit(&output, 64);
    let err = stderr(&output);
    assert!(err.contains("corvid: configuration error:"), "{err}");
    assert!(err.contains("c2s.bogus"), "{err}");
}

#[test]
fn unknown_key_in_the_environment_exits_64_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = corvid(
        dir.path(),
        &["user", "list"],
        &[("CORVID__LIMITS__BOGUS", "1")],
        "",
    );
    assert_exit(&output, 64);
    assert!(
        stderr(&output).contains("limits.bogus"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn bad_value_exits_64_naming_the_key() {
    let sandbox = Sandbox::new();
    let config = sandbox.write("corvid.toml", "[limits]\nmax_stanza_bytes = 100\n");
    let output = sandbox.run(&["serve", "--config", &config], "");
    assert_exit(&output, 64);
    assert!(
        stderr(&output).contains("limits.max_stanza_bytes"),
        "{}",
        stderr(&output)
    );

    let dir = tempfile::tempdir().unwrap();
    let output = corvid(
        dir.path(),
        &["user", "list"],
        &[("CORVID__C2S__REQUIRE_STARTTLS", "maybe")],
        "",
    );
    assert_exit(&output, 64);
    assert!(
        stderr(&output).contains("c2s.require_starttls"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn missing_config_file_exits_64() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(
        &["user", "list", "--config", "/nonexistent/corvid.toml"],
        "",
    );
    assert_exit(&output, 64);
    assert!(
        stderr(&output).contains("/nonexistent/corvid.toml"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn bad_arguments_exit_64_and_help_exits_0() {
    let sandbox = Sandbox::new();
    assert_exit(&sandbox.run(&["user", "frobnicate"], ""), 64);
    assert_exit(&sandbox.run(&[], ""), 64);
    let help = sandbox.run(&["--help"], "");
    assert_exit(&help, 0);
    assert!(stdout(&help).contains("serve"), "{}", stdout(&help));
}

#[test]
fn user_add_list_passwd_del_round_trip() {
    let sandbox = Sandbox::new();

    let added = sandbox.run(
        &["user", "add", "juliet@localhost", "--password", "balcony"],
        "",
    );
    assert_exit(&added, 0);
    assert_eq!(stdout(&added), "created juliet@localhost\n");
    // Without --password and with stdin not a terminal: one line from stdin.
    assert_exit(
        &sandbox.run(&["user", "add", "romeo@capulet.example"], "poison\n"),
        0,
    );

    let list = sandbox.run(&["user", "list"], "");
    assert_exit(&list, 0);
    assert_eq!(stdout(&list), "juliet@localhost\nromeo@capulet.example\n");

    let again = sandbox.run(&["user", "add", "juliet@localhost", "--password", "x"], "");
    assert_exit(&again, 1);
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );

    let foreign = sandbox.run(
        &["user", "add", "tybalt@montague.example", "--password", "x"],
        "",
    );
    assert_exit(&foreign, 64);
    assert!(
        stderr(&foreign).contains("montague.example"),
        "{}",
        stderr(&foreign)
    );
    assert_exit(
        &sandbox.run(&["user", "add", "not a jid", "--password", "x"], ""),
        64,
    );
    assert_exit(&sandbox.run(&["user", "add", "nurse@localhost"], ""), 64); // empty stdin

    assert_exit(
        &sandbox.run(&["user", "passwd", "juliet@localhost"], "nurse\n"),
        0,
    );
    assert_exit(
        &sandbox.run(
            &["user", "passwd", "nobody@localhost", "--password", "x"],
            "",
        ),
        1,
    );

    let deleted = sandbox.run(&["user", "del", "romeo@capulet.example"], "");
    assert_exit(&deleted, 0);
    assert_eq!(stdout(&deleted), "deleted romeo@capulet.example\n");
    assert_exit(
        &sandbox.run(&["user", "del", "romeo@capulet.example"], ""),
        1,
    );
    assert_eq!(
        stdout(&sandbox.run(&["user", "list"], "")),
        "juliet@localhost\n"
    );
}

#[test]
fn import_skips_invalid_lines_and_counts_existing_accounts() {
    let sandbox = Sandbox::new();
    assert_exit(
        &sandbox.run(
            &["user", "add", "juliet@localhost", "--password", "balcony"],
            "",
        ),
        0,
    );
    let csv = sandbox.write(
        "users.csv",
        "romeo@localhost,poison\nthis is not a jid,secret\njuliet@localhost,balcony\nnurse@capulet.example,p\n",
    );

    let output = sandbox.run(&["user", "import", "--csv", &csv], "");
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "created 2, existing 1, invalid 1\n");
    let err = stderr(&output);
    assert!(err.contains("line 2"), "{err}");
    assert!(
        !err.contains("secret"),
        "a password leaked into the report: {err}"
    );

    let list = stdout(&sandbox.run(&["user", "list"], ""));
    assert_eq!(
        list,
        "juliet@localhost\nnurse@capulet.example\nromeo@localhost\n"
    );

    assert_exit(
        &sandbox.run(&["user", "import", "--csv", "/nonexistent/users.csv"], ""),
        1,
    );
}
