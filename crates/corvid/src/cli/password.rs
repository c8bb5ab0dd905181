//! Where a password comes from: the `--password` flag, a terminal prompt (asked twice, so a typo
//! does not lock the user out), or one line of standard input when it is not a terminal (for
//! scripts: `echo "$PW" | corvid user add juliet@example.org`).

use std::io::{BufRead, IsTerminal};

use crate::cli::CliError;

/// The longest line read from standard input, so a misdirected pipe cannot exhaust memory.
const MAX_PASSWORD_LINE: u64 = 4096;

/// The password for `jid`: `given` if there is one, else from the terminal or standard input.
pub fn obtain(given: Option<&str>, jid: &str) -> Result<String, CliError> {
    let password = match given {
        Some(p) => p.to_owned(),
        None if std::io::stdin().is_terminal() => prompt_twice(jid)?,
        None => read_line(std::io::stdin().lock())?,
    };
    check_not_empty(password)
}

/// Asks on the terminal, twice, without echo.
fn prompt_twice(jid: &str) -> Result<String, CliError> {
    let first = rpassword::prompt_password(format!("Password for {jid}: "))
        .map_err(|e| CliError::Runtime(format!("cannot read the password: {e}")))?;
    let second = rpassword::prompt_password("Again: ")
        .map_err(|e| CliError::Runtime(format!("cannot read the password: {e}")))?;
    confirm(first, &second)
}

/// `first` if both entries agree.
fn confirm(first: String, second: &str) -> Result<String, CliError> {
    if first == second {
        Ok(first)
    } else {
        Err(CliError::Usage("the passwords do not match".into()))
    }
}

/// One line, without its line ending.
fn read_line<R>(input: R) -> Result<String, CliError>
where
    R: BufRead,
{
    let mut line = String::new();
    // Room for the longest accepted password and a CRLF ending; anything longer shows up as a
    // line over the limit once the ending is removed.
    let read = input
        .take(MAX_PASSWORD_LINE + 2)
        .read_line(&mut line)
        .map_err(|e| {
            CliError::Runtime(format!("cannot read the password from standard input: {e}"))
        })?;
    if read == 0 {
        return Err(CliError::Usage(
            "no password: standard input is empty (give --password, or run on a terminal to be prompted)".into(),
        ));
    }
    let trimmed = line.strip_suffix('\n').unwrap_or(&line);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    if trimmed.len() as u64 > MAX_PASSWORD_LINE {
        return Err(CliError::Usage(format!(
            "the password line on standard input is longer than {MAX_PASSWORD_LINE} bytes"
        )));
    }
    Ok(trimmed.to_owned())
}

fn check_not_empty(password: String) -> Result<String, CliError> {
    if password.is_empty() {
        return Err(CliError::Usage("the password is empty".into()));
    }
    Ok(password)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.
mod tests {
    use super::*;

    #[test]
    fn flag_wins() {
        assert_eq!(obtain(Some("s3cret"), "j@localhost").unwrap(), "s3cret");
        assert!(matches!(
            obtain(Some(""), "j@localhost"),
            Err(CliError::Usage(_))
        ));
    }

    #[test]
    fn one_line_without_its_ending() {
        assert_eq!(read_line(&b"hunter2\n"[..]).unwrap(), "hunter2");
        assert_eq!(
            read_line(&b"hunter2\r\nsecond line\n"[..]).unwrap(),
            "hunter2"
        );
        assert_eq!(read_line(&b"no newline"[..]).unwrap(), "no newline");
        assert_eq!(
            read_line(&b"  spaces kept  \n"[..]).unwrap(),
            "  spaces kept  "
        );
        assert!(matches!(read_line(&b""[..]), Err(CliError::Usage(_))));
        let mut longest = vec![b'a'; 4096];
        longest.extend_from_slice(b"\r\n");
        assert_eq!(read_line(&longest[..]).unwrap().len(), 4096);
        let too_long = vec![b'a'; 4097];
        assert!(matches!(read_line(&too_long[..]), Err(CliError::Usage(_))));
        assert!(matches!(
            read_line(&[b'a'; 9000][..]),
            Err(CliError::Usage(_))
        ));
    }

    #[test]
    fn confirmation_must_match() {
        assert_eq!(confirm("a".into(), "a").unwrap(), "a");
        let err = confirm("a".into(), "b").unwrap_err();
        assert_eq!(err.exit_code(), 64);
        assert!(err.to_string().contains("do not match"));
    }
}
