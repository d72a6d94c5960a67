//! `control.mode`, `control.owner`, `control.group` applied to the bound
//! socket. Names are looked up in the local /etc/passwd and /etc/group only
//! (first non-comment line whose first field matches; third field = id).

use std::ffi::CString;

use crate::config::IdOrName;

pub const PASSWD: &str = "/etc/passwd";
pub const GROUP: &str = "/etc/group";

/// chmod + chown as configured; on failure the caller removes the socket.
pub fn apply(
    path: &str,
    mode: Option<u32>,
    owner: Option<&IdOrName>,
    group: Option<&IdOrName>,
) -> Result<(), String> {
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("Cannot set mode {mode:o} on control socket {path}: {e}"))?;
    }
    if owner.is_none() && group.is_none() {
        return Ok(());
    }
    let uid = owner.map(|o| resolve(o, PASSWD, "user")).transpose()?;
    let gid = group.map(|g| resolve(g, GROUP, "group")).transpose()?;
    let c_path = CString::new(path).map_err(|_| format!("Invalid control path {path}"))?;
    // SAFETY: chown with a valid C string; u32::MAX (-1) leaves a side as is.
    let r = unsafe {
        libc::chown(
            c_path.as_ptr(),
            uid.unwrap_or(u32::MAX),
            gid.unwrap_or(u32::MAX),
        )
    };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!(
            "Cannot change ownership of control socket {path}: {e}. \
             Run the daemon as a user allowed to chown it (root, or a member of the target group)."
        ));
    }
    Ok(())
}

/// A numeric id, an all-digit string, or a name from `db`.
pub fn resolve(value: &IdOrName, db: &str, kind: &str) -> Result<u32, String> {
    let name = match value {
        IdOrName::Id(id) => return Ok(*id),
        IdOrName::Name(n) => n,
    };
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(id) = name.parse() {
            return Ok(id);
        }
    }
    let unknown = || {
        let (label, field) = if kind == "user" {
            ("user", "control.owner")
        } else {
            ("group", "control.group")
        };
        format!(
            "Unknown {label} \"{name}\" for {field} (not found in {db}). \
             Use a numeric id or a local account."
        )
    };
    let text = std::fs::read_to_string(db).map_err(|_| unknown())?;
    lookup(&text, name).ok_or_else(unknown)
}

/// Finds `name` in passwd/group-format text.
pub fn lookup(text: &str, name: &str) -> Option<u32> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name))
        .and_then(|f| f.get(2).and_then(|id| id.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DB: &str =
        "# comment\nroot:x:0:0:root:/root:/bin/bash\n\ndeploy:x:1001:1001::/home/deploy:/bin/sh\n";

    #[test]
    fn names_are_found_by_first_field() {
        assert_eq!(lookup(DB, "deploy"), Some(1001));
        assert_eq!(lookup(DB, "root"), Some(0));
        assert_eq!(lookup(DB, "nobody-here"), None);
        assert_eq!(lookup(DB, "# comment"), None);
    }

    #[test]
    fn numeric_strings_need_no_lookup() {
        assert_eq!(
            resolve(&IdOrName::Name("42".into()), "/nonexistent", "user"),
            Ok(42)
        );
        assert_eq!(resolve(&IdOrName::Id(7), "/nonexistent", "group"), Ok(7));
    }

    #[test]
    fn unknown_name_says_so_and_suggests_an_id() {
        let e = resolve(&IdOrName::Name("ghost".into()), PASSWD, "user").unwrap_err();
        assert!(e.starts_with("Unknown user \"ghost\""), "{e}");
        assert!(e.contains("numeric id"));
        let e = resolve(&IdOrName::Name("ghost".into()), GROUP, "group").unwrap_err();
        assert!(e.starts_with("Unknown group \"ghost\""), "{e}");
    }
}
