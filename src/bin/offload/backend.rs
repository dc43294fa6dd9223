//! `offload backend …`: the storage a profile uploads to.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use offload::backends::{BackendForm, Readiness};
use offload::engine::Saved;
use offload::storage::s3::Provider;
use offload::storage::BackendKind;
use offload::{Engine, Error};

use crate::words::print_report;
use crate::{print_json, CliResult};

#[derive(Subcommand)]
pub enum BackendCommand {
    /// Add a storage backend to a profile (an S3 backend is tested before it is saved).
    Add(Box<BackendAddArgs>),
    /// Change a backend's settings (a new key, endpoint or name); a running Offload uses them
    /// for its next upload, and the backend's waiting and failed uploads go again.
    Edit(Box<BackendEditArgs>),
    /// List backends.
    List {
        #[arg(long)]
        profile: Option<String>,
    },
    /// Check that a backend works, and say what to fix if not.
    Test {
        name: String,
        #[arg(long)]
        profile: String,
    },
    /// Make a backend the profile's default.
    Default {
        name: String,
        #[arg(long)]
        profile: String,
    },
    /// Remove a backend (its files stay where they are).
    Remove {
        name: String,
        #[arg(long)]
        profile: String,
    },
    /// Sign in to a Google Drive or OneDrive backend's account (again, when it was disconnected).
    Connect {
        name: String,
        #[arg(long)]
        profile: String,
        /// Only print the sign-in address; do not try to open a browser.
        #[arg(long)]
        no_browser: bool,
    },
}

#[derive(Args)]
pub struct BackendAddArgs {
    name: String,
    #[arg(long)]
    profile: String,
    #[arg(long = "type", value_parser = parse_kind)]
    kind: BackendKind,
    /// Make it the profile's default backend.
    #[arg(long)]
    default: bool,
    #[command(flatten)]
    settings: BackendFlags,
}

#[derive(Args)]
pub struct BackendEditArgs {
    name: String,
    #[arg(long)]
    profile: String,
    /// Give the backend a new name.
    #[arg(long, value_name = "NEW_NAME")]
    rename: Option<String>,
    #[command(flatten)]
    settings: BackendFlags,
}

fn parse_kind(text: &str) -> Result<BackendKind, String> {
    BackendKind::parse(text).ok_or_else(|| {
        format!("{text:?} is not a backend type (local, s3, google-drive, onedrive)")
    })
}

fn parse_provider(text: &str) -> Result<Provider, String> {
    Provider::parse(text).ok_or_else(|| {
        format!("{text:?} is not a provider (aws, r2, b2, wasabi, minio, garage, other)")
    })
}

/// A backend's settings, as `backend add` takes them and `backend edit` changes them (a flag
/// left out keeps what the backend has; an empty value clears an optional one).
#[derive(Args)]
pub struct BackendFlags {
    /// local: the library folder (default: ~/Videos/Offload).
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,
    /// s3: whose S3 it is (aws, r2, b2, wasabi, minio, garage, other; default other); fills in
    /// the endpoint pattern, region and quirks.
    #[arg(long, value_parser = parse_provider)]
    provider: Option<Provider>,
    /// s3: the service URL, e.g. https://<account>.r2.cloudflarestorage.com.
    #[arg(long)]
    endpoint: Option<String>,
    /// s3: the region to sign for (the provider's default when left out).
    #[arg(long)]
    region: Option<String>,
    /// s3: the bucket.
    #[arg(long)]
    bucket: Option<String>,
    /// s3: the access key id. The secret comes from stdin or OFFLOAD_S3_SECRET_ACCESS_KEY, never argv.
    #[arg(long)]
    access_key_id: Option<String>,
    /// s3: read the secret access key from the first line of standard input.
    #[arg(long)]
    secret_access_key_stdin: bool,
    /// s3: a folder inside the bucket that every upload goes under.
    #[arg(long)]
    prefix: Option<String>,
    /// s3: a public URL (custom domain) that serves the bucket, used for streaming.
    #[arg(long)]
    public_url: Option<String>,
    /// s3: address buckets as endpoint/bucket/key (MinIO, Garage and most self-hosted servers).
    #[arg(long)]
    path_style: bool,
    /// google-drive, onedrive: the client id of your OAuth app registration (else
    /// OFFLOAD_GOOGLE_CLIENT_ID / OFFLOAD_MICROSOFT_CLIENT_ID, else the setting
    /// oauth.google.client_id / oauth.microsoft.client_id).
    #[arg(long)]
    client_id: Option<String>,
    /// google-drive, onedrive: read the app's client secret from standard input (else
    /// OFFLOAD_GOOGLE_CLIENT_SECRET / OFFLOAD_MICROSOFT_CLIENT_SECRET; public clients have none).
    #[arg(long)]
    client_secret_stdin: bool,
    /// google-drive, onedrive: the id of the folder uploads go under (default: the drive's root).
    #[arg(long)]
    folder_id: Option<String>,
    /// google-drive, onedrive: bytes per upload request, e.g. 16M (Drive: a multiple of 256K,
    /// default 8M; OneDrive: a multiple of 320K under 60M, default 10M).
    #[arg(long, value_parser = crate::parse_size)]
    chunk_size: Option<u64>,
    /// google-drive, onedrive: the authorization endpoint (national clouds, tests).
    #[arg(long)]
    auth_url: Option<String>,
    /// google-drive, onedrive: the token endpoint.
    #[arg(long)]
    token_url: Option<String>,
    /// google-drive, onedrive: the API's base URL.
    #[arg(long)]
    api_base: Option<String>,
    /// Save without testing the connection first.
    #[arg(long)]
    skip_test: bool,
}

/// A secret from the first line of standard input (when `stdin`) or from `env`; never argv.
fn read_secret(
    stdin: bool,
    env: &str,
    what: &str,
) -> CliResult<Option<zeroize::Zeroizing<String>>> {
    let secret = if stdin {
        let mut line = zeroize::Zeroizing::new(String::new());
        std::io::stdin()
            .read_line(&mut line)
            .with_context(|| format!("cannot read {what} from stdin"))?;
        zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned())
    } else {
        match std::env::var(env) {
            Ok(secret) => zeroize::Zeroizing::new(secret),
            Err(_) => return Ok(None),
        }
    };
    if secret.is_empty() {
        return Err(Error::Invalid(format!("{what} is empty")).into());
    }
    Ok(Some(secret))
}

impl BackendFlags {
    /// `form` with the settings these flags give, the secrets read from stdin or the environment.
    fn apply(&self, form: &mut BackendForm) -> CliResult<()> {
        fn set<T: Clone>(field: &mut Option<T>, flag: &Option<T>) {
            if flag.is_some() {
                field.clone_from(flag);
            }
        }
        set(&mut form.path, &self.path);
        if let Some(provider) = self.provider {
            form.provider = provider;
        }
        set(&mut form.endpoint, &self.endpoint);
        set(&mut form.region, &self.region);
        set(&mut form.bucket, &self.bucket);
        set(&mut form.access_key_id, &self.access_key_id);
        set(&mut form.prefix, &self.prefix);
        set(&mut form.public_url, &self.public_url);
        form.path_style |= self.path_style;
        set(&mut form.client_id, &self.client_id);
        set(&mut form.folder_id, &self.folder_id);
        set(&mut form.chunk_size, &self.chunk_size);
        set(&mut form.auth_url, &self.auth_url);
        set(&mut form.token_url, &self.token_url);
        set(&mut form.api_base, &self.api_base);
        match form.kind {
            Some(BackendKind::S3) => {
                let secret = read_secret(
                    self.secret_access_key_stdin,
                    "OFFLOAD_S3_SECRET_ACCESS_KEY",
                    "the secret access key",
                )?;
                set(&mut form.secret_access_key, &secret);
                if form.secret_access_key.is_none() {
                    return Err(Error::Invalid(
                        "give the secret access key on standard input with --secret-access-key-stdin, or in OFFLOAD_S3_SECRET_ACCESS_KEY (never as an argument)".into(),
                    )
                    .into());
                }
            }
            Some(kind @ (BackendKind::GoogleDrive | BackendKind::Onedrive)) => {
                let upper = if kind == BackendKind::GoogleDrive {
                    "GOOGLE"
                } else {
                    "MICROSOFT"
                };
                let secret = read_secret(
                    self.client_secret_stdin,
                    &format!("OFFLOAD_{upper}_CLIENT_SECRET"),
                    "the client secret",
                )?;
                set(&mut form.client_secret, &secret);
            }
            Some(BackendKind::Local) | None => {}
        }
        Ok(())
    }
}

/// What saving said: the report of the test it passed or failed, and what became of it.
fn said(engine: &Engine, saved: Saved, verb: &str) -> ExitCode {
    match saved {
        Saved::Refused { report } => {
            print_report(engine, &report, None);
            eprintln!("not saved: fix what failed above (or add --skip-test to save anyway)");
            ExitCode::from(1)
        }
        Saved::Done {
            backend,
            report,
            queued,
        } => {
            if let Some(report) = report {
                print_report(engine, &report, Some(backend.id));
            }
            println!(
                "{verb} {} backend {:?} → {}{}",
                backend.kind,
                backend.name,
                backend.location,
                if backend.is_default { " (default)" } else { "" }
            );
            if queued > 0 {
                println!("{queued} of its uploads go again now");
            }
            ExitCode::SUCCESS
        }
    }
}

pub async fn backend(engine: &Engine, command: BackendCommand, json: bool) -> CliResult {
    match command {
        BackendCommand::Add(args) => {
            let profile = engine.profile_named(&args.profile)?;
            let mut form = BackendForm {
                kind: Some(args.kind),
                ..BackendForm::default()
            };
            args.settings.apply(&mut form)?;
            let saved = engine
                .add_backend(
                    profile.id,
                    &args.name,
                    &form,
                    args.default,
                    args.settings.skip_test,
                )
                .await?;
            Ok(said(engine, saved, "added"))
        }
        BackendCommand::Edit(args) => {
            let profile = engine.profile_named(&args.profile)?;
            let record = engine.backend_named(profile.id, &args.name)?;
            let mut form = engine.backend_form(record.id)?;
            args.settings.apply(&mut form)?;
            let saved = engine
                .change_backend(
                    record.id,
                    args.rename.as_deref(),
                    &form,
                    args.settings.skip_test,
                )
                .await?;
            Ok(said(engine, saved, "changed"))
        }
        BackendCommand::List { profile } => {
            let backends = engine.list_backends(crate::profile_id(engine, profile.as_deref())?)?;
            if json {
                print_json(&backends)?;
                return Ok(ExitCode::SUCCESS);
            }
            let profiles = engine.profiles()?;
            for backend in backends {
                let default = if backend.is_default {
                    "  (default)"
                } else {
                    ""
                };
                let owner = profiles
                    .iter()
                    .find(|view| view.profile.id == backend.profile_id)
                    .map_or("?", |view| view.profile.name.as_str());
                let account = match &backend.readiness {
                    Readiness::Ready => String::new(),
                    state @ (Readiness::NotSignedIn | Readiness::Disconnected { .. }) => {
                        format!(
                            "  {state}: run `offload backend connect {} --profile {owner}`",
                            backend.name
                        )
                    }
                    state => format!("  {state}"),
                };
                println!(
                    "{owner}/{}  {}  {}{default}{account}",
                    backend.name, backend.kind, backend.location
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        BackendCommand::Test { name, profile } => {
            let profile = engine.profile_named(&profile)?;
            let record = engine.backend_named(profile.id, &name)?;
            let report = engine.test_backend(record.id).await?;
            if json {
                print_json(&report)?;
            } else {
                print_report(engine, &report, Some(record.id));
            }
            Ok(if report.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        BackendCommand::Default { name, profile } => {
            let profile = engine.profile_named(&profile)?;
            let record = engine.backend_named(profile.id, &name)?;
            engine.set_default_backend(record.id)?;
            println!("{name:?} is now the default backend of {:?}", profile.name);
            Ok(ExitCode::SUCCESS)
        }
        BackendCommand::Remove { name, profile } => {
            let profile = engine.profile_named(&profile)?;
            let record = engine.backend_named(profile.id, &name)?;
            engine.remove_backend(record.id)?;
            println!("removed backend {name:?}");
            Ok(ExitCode::SUCCESS)
        }
        BackendCommand::Connect {
            name,
            profile,
            no_browser,
        } => {
            let profile = engine.profile_named(&profile)?;
            let record = engine.backend_named(profile.id, &name)?;
            // No deep links on the command line: the browser comes back to a listener here.
            let sign_in = engine.start_sign_in(record.id, None).await?;
            // The address always goes out on its own line: a sign-in must never hang on a
            // browser that did not open.
            eprintln!("Sign in with your browser. If none opens, open this address (it works for 10 minutes):");
            println!("{}", sign_in.url);
            let _ = std::io::stdout().flush();
            if !no_browser {
                // Failing is fine: the address was printed.
                let _ = offload::platform::open(&sign_in.url);
            }
            let connected = match sign_in.finish(engine).await {
                Some(finished) => finished?,
                None => {
                    return Err(Error::Invalid("the sign-in did not come back here".into()).into())
                }
            };
            match &connected.account {
                Some(account) => {
                    println!("connected {name:?} to {} as {account}", connected.provider)
                }
                None => println!("connected {name:?} to {}", connected.provider),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
