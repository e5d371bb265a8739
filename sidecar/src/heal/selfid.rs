//! Finding the sidecar's own container, so the governor never restarts it whatever its labels say
//! (a service must never be responsible for its own restart).
//!
//! The sources (mountinfo, cgroup v1 and v2) are ready-signal's [`ready_signal::container`], the
//! same that agents record in their ready-signal records; the host name's short id is the last
//! resort here, which the governor only trusts once the engine confirms a container with that id
//! prefix ([`confirm`]); otherwise it heals nothing and says why.

/// This process's container id, full when the kernel's files say it, else the short id from the
/// host name; `None` outside a container (or one that hides all three).
pub fn find() -> Option<String> {
    ready_signal::container::find().or_else(ready_signal::container::short_id)
}

/// Whether a short self id (fewer than 64 characters: a host name's hint, or a short
/// `--heal-self`) names a container: `found` is the engine's answer when asked for it (the
/// full id of the container it resolved, `Ok(None)` when it knows none, `Err` when it could not
/// be asked). `Err(why)` means the governor must heal nothing; a full id needs no confirmation.
pub fn confirm(id: &str, found: Result<Option<String>, String>) -> Result<(), String> {
    if id.len() >= 64 {
        return Ok(());
    }
    let way_out = "give its id with --heal-self ID, or --heal-self none when it runs in no \
                   container it watches";
    match found {
        Ok(Some(full)) if full.starts_with(id) => Ok(()),
        Ok(_) => Err(format!(
            "knows only the short id {id} (its host name) and the engine has no container with \
             that id prefix: healing refused, as it could restart itself ({way_out})"
        )),
        Err(e) => Err(format!(
            "knows only the short id {id} (its host name) and the engine could not confirm it \
             ({e}): healing refused, as it could restart itself ({way_out})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full id is taken as it is; a short one only when the engine resolves it to a container
    /// whose id begins with it (not a container that merely has it as its name); otherwise the
    /// refusal names the id and --heal-self.
    #[test]
    fn a_short_id_counts_only_when_the_engine_confirms_it() {
        let full = "c0ffee".repeat(10) + "c0ff";
        assert_eq!(confirm(&full, Err("down".into())), Ok(()));
        assert_eq!(confirm("c0ffeec0ffee", Ok(Some(full.clone()))), Ok(()));
        for found in [
            Ok(None),
            Ok(Some("ab".repeat(32))),
            Err("connection refused".to_owned()),
        ] {
            let why = confirm("c0ffeec0ffee", found.clone()).unwrap_err();
            assert!(
                why.contains("c0ffeec0ffee") && why.contains("--heal-self"),
                "{found:?}: {why}"
            );
        }
    }
}
