//! The plain inventory: one `[USER@]HOST[:PORT]` per line, `#` comments,
//! blank lines ignored. Apart from the Ansible formats because it has no
//! groups or variables, only hosts.

use super::{split_words, LineError, Model, Vars};

/// One `[USER@]HOST[:PORT]` per line; `#` starts a comment.
pub(super) fn parse_plain_list(text: &str) -> Result<Model, LineError> {
    let mut model = Model::default();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let words = split_words(raw).map_err(|message| (line, message))?;
        match words.as_slice() {
            [] => {}
            [host] => model.add_host("ungrouped", host, Vars::new(), line)?,
            _ => {
                return Err((
                    line,
                    format!(
                        "expected one [USER@]HOST[:PORT] per line, found `{}`",
                        raw.trim()
                    ),
                ))
            }
        }
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use crate::inventory::testing::{error_of, specs};
    use crate::inventory::{detect_format, parse_inventory, InventoryFormat};

    #[test]
    fn plain_lists_hold_one_host_per_line() {
        let text = "# fleet\nweb1\nroot@10.0.0.5:2222  # db\n\n[::1]:2200\nweb1\n";
        assert_eq!(detect_format("hosts", text), InventoryFormat::PlainList);
        assert_eq!(
            parse_inventory("hosts", text).unwrap(),
            specs(&["web1", "root@10.0.0.5:2222", "[::1]:2200"])
        );
    }

    #[test]
    fn plain_list_errors_name_file_and_line() {
        assert_eq!(
            error_of("hosts", "web1\nweb2 web3\n"),
            "hosts:2: expected one [USER@]HOST[:PORT] per line, found `web2 web3`"
        );
        assert!(error_of("hosts", "web1\n\nweb2:99999\n").starts_with("hosts:3: "));
        assert_eq!(
            error_of("hosts", "# nothing\n"),
            "hosts: the inventory names no hosts"
        );
    }
}
