//! Test hooks: crash injection for the recovery tests (`--test-crash-at`,
//! `CAMSTREAM_TEST_CRASH_AT`).
//!
//! Compiled in only with the `test-hooks` feature. The workspace's tests turn it on (the
//! root crate dev-depends on this crate with it, so `cargo test` builds the `camstream`
//! binary the end-to-end tests run with the hook); `cargo build --release --bin camstream`
//! does not, and then [`TestHookArgs`] has no field: the flag and its variable do not exist
//! and the code that aborts is not in the binary. The flags live here rather than in the
//! binary's own argument struct because a binary cannot see its dependencies' features.

use crate::ControlPlaneConfig;

/// `camstream serve` flags that exist only in test builds; flattened into its arguments.
#[cfg(feature = "test-hooks")]
#[derive(Debug, Default, Clone, clap::Args)]
pub struct TestHookArgs {
    /// Test hook: abort the process in the middle of a retention move (after-copy or
    /// after-switch), to prove crash recovery.
    #[arg(long, env = "CAMSTREAM_TEST_CRASH_AT", hide = true)]
    pub test_crash_at: Option<String>,
}

/// `camstream serve` flags that exist only in test builds: none in this one.
#[cfg(not(feature = "test-hooks"))]
#[derive(Debug, Default, Clone, clap::Args)]
pub struct TestHookArgs {}

impl TestHookArgs {
    /// Sets the hooks asked for on `config`.
    ///
    /// # Errors
    /// Which flag has a value it does not take, and why.
    #[cfg(feature = "test-hooks")]
    pub fn apply(&self, config: &mut ControlPlaneConfig) -> Result<(), String> {
        if let Some(point) = &self.test_crash_at {
            let point = point.parse().map_err(|e| format!("test-crash-at: {e}"))?;
            config.test_crash_at = Some(point);
        }
        Ok(())
    }

    /// Sets the hooks asked for on `config`: there are none in this build.
    ///
    /// # Errors
    /// Never.
    #[cfg(not(feature = "test-hooks"))]
    pub fn apply(&self, _config: &mut ControlPlaneConfig) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        hooks: TestHookArgs,
    }

    #[cfg(feature = "test-hooks")]
    #[test]
    fn crash_point_is_parsed_and_checked() {
        let cli = Cli::try_parse_from(["x", "--test-crash-at", "after-switch"]).unwrap();
        let mut config = ControlPlaneConfig::default();
        cli.hooks.apply(&mut config).unwrap();
        assert_eq!(
            config.test_crash_at,
            Some(crate::recordings::CrashPoint::AfterSwitch)
        );
        let cli = Cli::try_parse_from(["x", "--test-crash-at", "sometime"]).unwrap();
        let err = cli.hooks.apply(&mut config).unwrap_err();
        assert!(err.contains("after-copy or after-switch"), "{err}");
    }

    /// Runs when this crate is tested alone without the feature
    /// (`cargo test -p camstream-controlplane`): what a release binary parses.
    #[cfg(not(feature = "test-hooks"))]
    #[test]
    fn without_the_feature_the_flag_does_not_exist() {
        let err = Cli::try_parse_from(["x", "--test-crash-at", "after-copy"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
    }
}
