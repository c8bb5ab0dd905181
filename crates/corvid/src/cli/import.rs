//! `corvid user import --csv FILE`: `jid,password` records, no header.
//!
//! ```text
//!   CSV records ─ parse (JID rule, duplicates) ─▶ batch of BATCH ─▶ derive on every core ─▶ AccountStore::import
//!        │ bad line                                                    │ unacceptable password
//!        └──────────────────────── "line N: …" on stderr, counted invalid, skipped ◀┘
//! ```
//!
//! The file is streamed, one batch at a time, so memory stays flat however long it is (apart from
//! one entry per JID to catch duplicates). PBKDF2 dominates the cost (two derivations of
//! `auth.scram_iterations` rounds per account), so each batch is split across one thread per core.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::num::NonZeroUsize;

use corvid_jid::BareJid;
use corvid_sasl::{Failure, StoredCredentials};
use corvid_storage::AccountStore;

use crate::cli::user::{store_error, Domains};
use crate::cli::CliError;

/// Accounts derived and written per store transaction.
pub const BATCH: usize = 1000;

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Accounts created.
    pub created: usize,
    /// Accounts left alone because they already existed.
    pub existing: usize,
    /// Lines skipped (each reported with its line number).
    pub invalid: usize,
}

/// One account waiting for its credentials.
struct Pending {
    line: u64,
    jid: BareJid,
    password: String,
}

/// Imports every record of `input`, reporting skipped lines to `err`. Only I/O and store failures
/// stop the import; a bad line never does.
pub async fn import<R>(
    input: R,
    domains: &Domains,
    iterations: u32,
    accounts: &dyn AccountStore,
    err: &mut dyn Write,
) -> Result<ImportSummary, CliError>
where
    R: Read,
{
    import_in_batches(input, domains, iterations, accounts, err, BATCH).await
}

/// [`import`] with a chosen batch size (tests use small ones).
async fn import_in_batches<R>(
    input: R,
    domains: &Domains,
    iterations: u32,
    accounts: &dyn AccountStore,
    err: &mut dyn Write,
    batch_size: usize,
) -> Result<ImportSummary, CliError>
where
    R: Read,
{
    let batch_size = batch_size.max(1);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut summary = ImportSummary::default();
    let mut seen: HashMap<BareJid, u64> = HashMap::new();
    let mut batch = Vec::with_capacity(batch_size);
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(0, csv::Position::line);
                match parse_record(&record, line, domains, &mut seen) {
                    Ok(pending) => batch.push(pending),
                    Err(reason) => skip(err, &mut summary, line, &reason)?,
                }
            }
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                match e.kind() {
                    csv::ErrorKind::Io(_) => {
                        return Err(CliError::Runtime(format!("cannot read the CSV file: {e}")))
                    }
                    csv::ErrorKind::Utf8 { .. } => {
                        skip(err, &mut summary, line, "not valid UTF-8")?
                    }
                    _ => skip(err, &mut summary, line, &e.to_string())?,
                }
            }
        }
        if batch.len() >= batch_size {
            flush(&mut batch, iterations, accounts, err, &mut summary).await?;
        }
    }
    flush(&mut batch, iterations, accounts, err, &mut summary).await?;
    Ok(summary)
}

/// A record as an account to create, or why it is skipped.
fn parse_record(
    record: &csv::StringRecord,
    line: u64,
    domains: &Domains,
    seen: &mut HashMap<BareJid, u64>,
) -> Result<Pending, String> {
    let (jid, password) = match (record.get(0), record.get(1), record.len()) {
        (Some(jid), Some(password), 2) => (jid.trim(), password),
        (_, _, n) => return Err(format!("expected 2 fields (jid,password), found {n}")),
    };
    let jid = domains.account_jid(jid)?;
    if password.is_empty() {
        return Err(format!("empty password for {jid}"));
    }
    if let Some(first) = seen.get(&jid) {
        return Err(format!("{jid} already appears on line {first}"));
    }
    seen.insert(jid.clone(), line);
    Ok(Pending {
        line,
        jid,
        password: password.to_owned(),
    })
}

/// Derives the batch's credentials and imports the accounts whose passwords were acceptable.
async fn flush(
    batch: &mut Vec<Pending>,
    iterations: u32,
    accounts: &dyn AccountStore,
    err: &mut dyn Write,
    summary: &mut ImportSummary,
) -> Result<(), CliError> {
    if batch.is_empty() {
        return Ok(());
    }
    let pending = std::mem::take(batch);
    let derived = tokio::task::spawn_blocking(move || derive_all(pending, iterations))
        .await
        .map_err(|e| CliError::Runtime(format!("credential derivation failed: {e}")))?
        .map_err(CliError::Runtime)?;
    let mut ready = Vec::with_capacity(derived.len());
    for (line, jid, creds) in derived {
        match creds {
            Ok(creds) => ready.push((jid, creds)),
            Err(e) => skip(
                err,
                summary,
                line,
                &format!("the password for {jid} is not acceptable ({e})"),
            )?,
        }
    }
    if ready.is_empty() {
        return Ok(());
    }
    let report = accounts.import(&ready).await.map_err(store_error)?;
    summary.created += report.created;
    summary.existing += report.existing;
    Ok(())
}

type Derived = (u64, BareJid, Result<StoredCredentials, Failure>);

/// Derives credentials for every entry, in order, on one thread per core.
fn derive_all(pending: Vec<Pending>, iterations: u32) -> Result<Vec<Derived>, String> {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let threads = cores.min(pending.len()).max(1);
    let chunk = pending.len().div_ceil(threads).max(1);
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = pending
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|p| StoredCredentials::derive(&p.password, iterations))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        // Every handle is joined, so a panicking derivation surfaces here as an error instead of
        // re-panicking at the end of the scope.
        handles.into_iter().map(|h| h.join()).collect::<Vec<_>>()
    });
    let mut credentials = Vec::with_capacity(pending.len());
    for result in results {
        credentials.extend(
            result.map_err(|_| {
                "credential derivation failed (a worker thread panicked)".to_owned()
            })?,
        );
    }
    Ok(pending
        .into_iter()
        .zip(credentials)
        .map(|(p, creds)| (p.line, p.jid, creds))
        .collect())
}

fn skip(
    err: &mut dyn Write,
    summary: &mut ImportSummary,
    line: u64,
    reason: &str,
) -> Result<(), CliError> {
    summary.invalid += 1;
    writeln!(err, "line {line}: skipped: {reason}")
        .map_err(|e| CliError::Runtime(format!("cannot write the output: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.
mod tests {
    use super::*;
    use crate::cli::user::tests::{settings, MemoryAccounts};

    async fn run(csv: &str, accounts: &MemoryAccounts) -> (ImportSummary, String) {
        let mut err = Vec::new();
        let settings = settings();
        let domains = Domains::new(&settings);
        let summary = import(csv.as_bytes(), &domains, 4096, accounts, &mut err)
            .await
            .unwrap();
        (summary, String::from_utf8(err).unwrap())
    }

    #[tokio::test]
    async fn creates_counts_existing_and_reports_invalid_lines() {
        let accounts = MemoryAccounts::default();
        let csv = "juliet@localhost,balcony\n\
                   not a jid,x\n\
                   romeo@capulet.example,\"with,comma\"\n\
                   nurse@montague.example,x\n\
                   onlyonefield\n\
                   tybalt@localhost,\n\
                   juliet@localhost,again\n\
                   a@localhost,b,c\n";
        let (summary, err) = run(csv, &accounts).await;
        assert_eq!(
            summary,
            ImportSummary {
                created: 2,
                existing: 0,
                invalid: 6
            },
            "{err}"
        );
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 6, "{err}");
        assert!(
            lines[0].starts_with("line 2: skipped: `not a jid`"),
            "{err}"
        );
        assert!(
            lines[1].starts_with("line 4: ") && lines[1].contains("montague.example"),
            "{err}"
        );
        assert!(
            lines[2].starts_with("line 5: skipped: expected 2 fields"),
            "{err}"
        );
        assert!(
            lines[3].starts_with("line 6: skipped: empty password"),
            "{err}"
        );
        assert!(
            lines[4].starts_with("line 7: ") && lines[4].contains("line 1"),
            "{err}"
        );
        assert!(
            lines[5].starts_with("line 8: skipped: expected 2 fields"),
            "{err}"
        );
        // Passwords never appear in reports.
        assert!(!err.contains("balcony") && !err.contains("again"), "{err}");

        let jid: BareJid = "romeo@capulet.example".parse().unwrap();
        assert!(accounts.accounts.lock().unwrap().contains_key(&jid));

        let (summary, _) = run("juliet@localhost,balcony\nnurse@localhost,x\n", &accounts).await;
        assert_eq!(
            summary,
            ImportSummary {
                created: 1,
                existing: 1,
                invalid: 0
            }
        );
    }

    #[tokio::test]
    async fn imports_in_batches_of_valid_lines() {
        let accounts = MemoryAccounts::default();
        let mut csv: String = (0..9)
            .map(|i| format!("user{i}@localhost,pw{i}\n"))
            .collect();
        csv.insert_str(0, "bad line\n");
        let settings = settings();
        let domains = Domains::new(&settings);
        let mut err = Vec::new();
        let summary = import_in_batches(csv.as_bytes(), &domains, 4096, &accounts, &mut err, 4)
            .await
            .unwrap();
        let expected = ImportSummary {
            created: 9,
            existing: 0,
            invalid: 1,
        };
        assert_eq!(summary, expected, "{}", String::from_utf8_lossy(&err));
        assert_eq!(*accounts.batches.lock().unwrap(), vec![4, 4, 1]);
        assert_eq!(accounts.accounts.lock().unwrap().len(), 9);
    }

    #[test]
    fn derivation_keeps_the_order_of_its_input() {
        let pending: Vec<Pending> = (0..7)
            .map(|i| Pending {
                line: i,
                jid: format!("u{i}@localhost").parse().unwrap(),
                password: format!("p{i}"),
            })
            .collect();
        let derived = derive_all(pending, 4096).unwrap();
        let lines: Vec<u64> = derived.iter().map(|(line, _, _)| *line).collect();
        assert_eq!(lines, (0..7).collect::<Vec<_>>());
        for (line, jid, creds) in derived {
            let creds = creds.unwrap();
            assert_eq!(jid.to_string(), format!("u{line}@localhost"));
            let expected = corvid_sasl::ScramKeys::derive(
                corvid_sasl::ScramHash::Sha256,
                &format!("p{line}"),
                &creds.sha256.salt,
                4096,
            )
            .unwrap();
            assert_eq!(creds.sha256, expected);
        }
        assert!(derive_all(Vec::new(), 4096).unwrap().is_empty());
    }

    #[tokio::test]
    async fn empty_file_does_nothing() {
        let accounts = MemoryAccounts::default();
        let (summary, err) = run("", &accounts).await;
        assert_eq!(summary, ImportSummary::default());
        assert!(err.is_empty());
        assert!(accounts.batches.lock().unwrap().is_empty());
    }
}
