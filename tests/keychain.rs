//! The master key in the real OS keychain (Secret Service on Linux). The README's test command
//! runs the tests inside a D-Bus session with an unlocked gnome-keyring.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Sandbox;

fn key_command(sandbox: &Sandbox, service: &str) -> std::process::Command {
    let mut command = sandbox.offload();
    command
        .args(["--json", "key"])
        .env_remove("OFFLOAD_MASTER_KEY")
        .env("OFFLOAD_KEYCHAIN_SERVICE", service);
    command
}

#[test]
fn the_master_key_is_created_once_and_found_by_a_second_process() {
    assert!(
        std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some(),
        "this test needs a Secret Service: run it through the README's test command (scripts/test)"
    );
    let sandbox = Sandbox::new();
    let service = format!("offload-test-{}", uuid::Uuid::new_v4().simple());
    let first = key_command(&sandbox, &service).output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stderr).contains("created Offload's master key"));
    let first: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(first["source"], "OS keychain");

    let second = key_command(&sandbox, &service).output().unwrap();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&second.stderr).contains("created Offload's master key"),
        "the key is created once"
    );
    let second: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(
        first["fingerprint"], second["fingerprint"],
        "a second process finds the same key"
    );
}

#[test]
fn with_no_keychain_the_message_names_both_ways_out() {
    let sandbox = Sandbox::new();
    let output = key_command(&sandbox, "offload-test-none")
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            format!("unix:path={}", sandbox.path("no-bus").display()),
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("Secret Service") && said.contains("OFFLOAD_MASTER_KEY"),
        "{said}"
    );
    common::assert_sentence(&said);
}

#[test]
fn the_environment_key_is_an_explicit_opt_in_and_must_be_32_bytes() {
    let sandbox = Sandbox::new();
    let good = sandbox
        .offload()
        .args(["--json", "key"])
        .env(
            "OFFLOAD_MASTER_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .output()
        .unwrap();
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let good: serde_json::Value = serde_json::from_slice(&good.stdout).unwrap();
    assert_eq!(good["source"], "OFFLOAD_MASTER_KEY");

    let bad = sandbox
        .offload()
        .args(["key"])
        .env("OFFLOAD_MASTER_KEY", "too-short")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not the base64 of 32 bytes"));

    let other = sandbox
        .offload()
        .args(["key"])
        .env(
            "OFFLOAD_MASTER_KEY",
            "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
        )
        .output()
        .unwrap();
    assert_eq!(other.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("different master key"),
        "a key that does not match the database is named as such"
    );
}
