//! Quoting for the POSIX shell every remote runs commands in (`/bin/sh -c`
//! on a host, `chroot /sysroot /bin/sh -c` in an image). Whatever a
//! validator passes as a word reaches the shell as that one literal word.

/// Quotes `word` for a POSIX shell so that it is passed as one literal word.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:+,@%".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_hostile_values_literal() {
        assert_eq!(shell_quote("plain-word_1.0"), "plain-word_1.0");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("x'; rm -rf /; '"), r"'x'\''; rm -rf /; '\'''");
        assert_eq!(shell_quote(""), "''");
    }
}
