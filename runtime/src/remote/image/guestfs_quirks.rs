//! Workarounds for the `guestfs` crate (0.1), kept in one place so they are
//! easy to drop when the crate grows what they stand in for. The crate keeps
//! its error's fields private and implements only `Debug`, so a libguestfs
//! message is read back out of the `Debug` text; and it offers no way to set
//! libguestfs's error handler, whose default prints every failed call to
//! stderr, so the handler is switched off through the C API with the handle
//! pointer the crate holds. Both lean on details of the crate that its API
//! does not promise, which is why they live apart from the code using them.

/// libguestfs prints every failed call to stderr ("libguestfs: error: …",
/// often a paragraph of debugging advice) besides returning it; kiln reports
/// errors itself, in one line, so the printing is switched off. The messages
/// stay available to the `guestfs` crate through `guestfs_last_error`. The
/// setting is per thread (libguestfs keeps error state in thread-local
/// storage), so every thread that calls on a handle needs it.
pub(super) fn silence_error_printing(handle: &guestfs::Handle) {
    #[link(name = "guestfs")]
    extern "C" {
        fn guestfs_set_error_handler(
            g: *mut std::ffi::c_void,
            cb: Option<
                extern "C" fn(
                    *mut std::ffi::c_void,
                    *mut std::ffi::c_void,
                    *const std::ffi::c_char,
                ),
            >,
            opaque: *mut std::ffi::c_void,
        );
    }
    // The crate keeps the `guestfs_h *` in its only field and offers no way
    // to set the handler. A struct exactly the size of its one pointer field
    // holds that field at offset 0, which this assertion pins down.
    const _: () = assert!(
        std::mem::size_of::<guestfs::Handle>() == std::mem::size_of::<*mut std::ffi::c_void>()
    );
    // SAFETY: per the assertion above, the handle's first (only) word is
    // the live `guestfs_h *` it owns; a null callback is documented as
    // "no handler" and the handle outlives this call.
    unsafe {
        let g = *(handle as *const guestfs::Handle as *const *mut std::ffi::c_void);
        guestfs_set_error_handler(g, None, std::ptr::null_mut());
    }
}

/// The message of a libguestfs error. The `guestfs` crate (0.1) keeps the
/// fields of its error private and implements only `Debug`, so the message
/// is read back out of the `Debug` text.
pub(super) fn describe(error: &guestfs::Error) -> String {
    let debug = format!("{error:?}");
    message_from_debug(&debug).unwrap_or(debug)
}

fn message_from_debug(debug: &str) -> Option<String> {
    let start = debug.find("message: \"")? + "message: \"".len();
    let mut message = String::new();
    let mut chars = debug[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(message.trim().to_string()),
            '\\' => match chars.next()? {
                'n' => message.push('\n'),
                't' => message.push('\t'),
                'r' => message.push('\r'),
                '0' => message.push('\0'),
                'u' => {
                    let hex: String = chars.by_ref().skip(1).take_while(|&c| c != '}').collect();
                    message.push(
                        u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .unwrap_or('?'),
                    );
                }
                other => message.push(other),
            },
            c => message.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guestfs_messages_are_read_from_debug_text() {
        let debug = r#"API(APIError { operation: "sh", message: "sh: line \"1\"\nnext \u{1b}x", errno: 0 })"#;
        assert_eq!(
            message_from_debug(debug).unwrap(),
            "sh: line \"1\"\nnext \u{1b}x"
        );
        assert_eq!(message_from_debug("Create"), None);
    }
}
