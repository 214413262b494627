//! `kiln pack --batch FILE`: the file naming one image a line, each with
//! its own manifest and plugin arguments, read and checked whole before
//! anything launches. A line is split into words as a shell splits simple
//! ones (whitespace; '…' and "…" quoting; a backslash escapes the next
//! character; an unquoted `#` starting a word comments out the rest of the
//! line; nothing is expanded), then read as the command line's tail:
//! `IMAGE [--arg NAME=VALUE]... PLUGIN VERSION | MANIFEST [--NAME VALUE]...`.
//! Relative image and manifest paths are relative to the file's directory.
//! The manifest is named, loaded and its arguments parsed by the same code
//! as on the command line (`naming`, `Kiln::load`, `plugin_args`), so a
//! line accepts exactly the spellings the command line does. Every error
//! names `FILE:LINE:COL` of the word at fault.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use kiln::manifest::{LoadOptions, Manifest};
use kiln::Kiln;

use super::super::naming::{take_name, ManifestName};
use super::super::plugin_args::{self, PluginArgs, WordAt};
use super::same_file;

/// How large a batch file may be: a list of images, not a data set.
const MAX_BYTES: u64 = 1 << 20;

/// A batch file that cannot be used, at the place that says why
/// (`FILE:LINE:COL: …`, or `FILE: …` for the file as a whole).
#[derive(Debug)]
pub struct BatchFileError {
    /// As given on the command line, escaped when printed (errors are).
    file: String,
    /// From 1; 0 for the file as a whole.
    line: usize,
    column: usize,
    message: String,
}

impl std::fmt::Display for BatchFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.file, self.message),
            line => write!(f, "{}:{line}:{}: {}", self.file, self.column, self.message),
        }
    }
}

impl std::error::Error for BatchFileError {}

/// A word of a line and the column (in characters, from 1) it starts at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Word {
    pub text: String,
    pub column: usize,
}

/// What went wrong at a column of one line.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct LineError {
    pub column: usize,
    pub message: String,
}

impl LineError {
    fn at(column: usize, message: impl Into<String>) -> LineError {
        LineError {
            column,
            message: message.into(),
        }
    }
}

/// Splits one line into words the way a shell splits simple ones; no
/// words for a blank or comment line.
pub(super) fn split_words(line: &str) -> Result<Vec<Word>, LineError> {
    let mut words = Vec::new();
    let mut chars = line.chars().zip(1..).peekable();
    while let Some(&(c, column)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '#' {
            break;
        }
        let mut text = String::new();
        while let Some(&(c, at)) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            match c {
                '\'' => loop {
                    match chars.next() {
                        Some(('\'', _)) => break,
                        Some((c, _)) => text.push(c),
                        None => return Err(LineError::at(at, "this ' is never closed")),
                    }
                },
                '"' => loop {
                    match chars.next() {
                        Some(('"', _)) => break,
                        // As in a shell: inside "…", a backslash escapes
                        // only these; before anything else it stays.
                        Some(('\\', _)) => match chars.next() {
                            Some((c @ ('"' | '\\' | '$' | '`'), _)) => text.push(c),
                            Some((c, _)) => {
                                text.push('\\');
                                text.push(c);
                            }
                            None => return Err(LineError::at(at, "this \" is never closed")),
                        },
                        Some((c, _)) => text.push(c),
                        None => return Err(LineError::at(at, "this \" is never closed")),
                    }
                },
                '\\' => match chars.next() {
                    Some((c, _)) => text.push(c),
                    None => {
                        return Err(LineError::at(
                            at,
                            "a `\\` ends the line; a batch line cannot continue on the next",
                        ))
                    }
                },
                c => text.push(c),
            }
        }
        words.push(Word { text, column });
    }
    Ok(words)
}

/// One line read into its parts, nothing loaded yet.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct LineSpec {
    pub image: Word,
    /// The manifest's name and the column it starts at.
    pub manifest: (ManifestName, usize),
    /// The words after the manifest's name: the plugin's arguments.
    pub words: Vec<Word>,
    /// `--arg NAME=VALUE` pairs, wherever they stood.
    pub arg_pairs: Vec<Word>,
}

/// Reads a line's words: the image, `--arg` pairs before the manifest's
/// name, the name (as `naming::take_name` reads it on the command line),
/// and the plugin's words after it; `--arg` pairs among those are taken by
/// `plugin_args` as on the command line.
pub(super) fn parse_line(words: Vec<Word>) -> Result<LineSpec, LineError> {
    let mut words = words.into_iter();
    let image = words.next().ok_or_else(|| LineError::at(1, "no image"))?;
    if image.text.starts_with('-') {
        return Err(LineError::at(
            image.column,
            format!(
                "a line starts with the image, found `{}`; kiln's own options go on the command line",
                image.text
            ),
        ));
    }
    let mut rest: Vec<Word> = words.collect();
    let mut arg_pairs = Vec::new();
    while rest.first().is_some_and(|w| arg_option(&w.text)) {
        let option = rest.remove(0);
        arg_pairs.push(arg_pair(option, &mut rest)?);
    }
    let texts: Vec<OsString> = rest.iter().map(|w| OsString::from(&w.text)).collect();
    let after_image = rest.first().map_or(image.column, |w| w.column);
    let named = take_name(&texts).map_err(|e| LineError::at(after_image, e.to_string()))?;
    let Some((name, after)) = named else {
        return Err(LineError::at(
            after_image,
            "name a manifest after the image: PLUGIN VERSION or a path to its .yaml file",
        ));
    };
    let taken = texts.len() - after.len();
    let column = rest[0].column;
    let mut words: Vec<Word> = rest.split_off(taken);
    // `--arg` among the plugin's words: kiln's --arg, as the line's form
    // promises, taken out here where a plugin option's value cannot be
    // mistaken for it (an option always takes the next word).
    let mut plugin_words = Vec::with_capacity(words.len());
    let mut iter = std::mem::take(&mut words).into_iter();
    while let Some(word) = iter.next() {
        if arg_option(&word.text) {
            let mut next: Vec<Word> = iter.next().into_iter().collect();
            arg_pairs.push(arg_pair(word, &mut next)?);
            continue;
        }
        let takes_value = takes_next_word(&word.text);
        plugin_words.push(word);
        if takes_value {
            plugin_words.extend(iter.next());
        }
    }
    Ok(LineSpec {
        image,
        manifest: (name, column),
        words: plugin_words,
        arg_pairs,
    })
}

/// Whether a plugin option takes the next word as its value, as
/// `plugin_args` reads it: `--NAME` without `=VALUE`, or `-x` alone.
fn takes_next_word(text: &str) -> bool {
    match text.strip_prefix("--") {
        Some(long) => !long.contains('='),
        None => text.starts_with('-') && text.chars().count() == 2,
    }
}

fn arg_option(text: &str) -> bool {
    text == "--arg" || text.starts_with("--arg=")
}

/// The pair of an `--arg` word: after `=`, or the next word.
fn arg_pair(option: Word, rest: &mut Vec<Word>) -> Result<Word, LineError> {
    if let Some(pair) = option.text.strip_prefix("--arg=") {
        return Ok(Word {
            text: pair.to_string(),
            column: option.column,
        });
    }
    if rest.is_empty() {
        return Err(LineError::at(option.column, "--arg needs NAME=VALUE"));
    }
    Ok(rest.remove(0))
}

/// One image of the batch, ready to run.
pub struct BatchEntry {
    pub image: PathBuf,
    /// `FILE:LINE`, as reports and progress lines name it.
    pub place: String,
    /// The line it was read from, from 1.
    pub line: usize,
    pub manifest: Manifest,
    pub arguments: BTreeMap<String, String>,
}

/// What loading a batch file needs from the run.
pub(super) struct Loader<'a> {
    pub kiln: &'a Kiln,
    /// Where PLUGIN VERSION is looked up.
    pub dirs: &'a [PathBuf],
    pub load_options: &'a LoadOptions,
    /// Every spelling of `kiln pack`'s own options.
    pub own: &'a [String],
}

impl Loader<'_> {
    /// Reads, splits and loads every line: each manifest loaded, each
    /// line's arguments parsed and checked, no image named twice. The
    /// first error ends it; nothing has been opened or launched by then.
    pub(super) fn load(&self, file: &Path) -> Result<Vec<BatchEntry>, BatchFileError> {
        let shown = file.display().to_string();
        let error = |line: usize, column: usize, message: String| BatchFileError {
            file: shown.clone(),
            line,
            column,
            message,
        };
        let text = read_bounded(file).map_err(|message| error(0, 0, message))?;
        let base = file.parent().unwrap_or(Path::new("."));
        let mut entries: Vec<BatchEntry> = Vec::new();
        for (line, number) in text.lines().zip(1..) {
            let words = split_words(line).map_err(|e| error(number, e.column, e.message))?;
            if words.is_empty() {
                continue;
            }
            let spec = parse_line(words).map_err(|e| error(number, e.column, e.message))?;
            let image = base.join(&spec.image.text);
            if let Some(earlier) = entries.iter().find(|e| same_file(&e.image, &image)) {
                return Err(error(
                    number,
                    spec.image.column,
                    format!(
                        "{} is the same file as {} on line {}; each image can be packed only once per run",
                        spec.image.text,
                        earlier.image.display(),
                        earlier.line
                    ),
                ));
            }
            let (manifest, arguments) = self
                .load_line(base, &spec)
                .map_err(|e| error(number, e.column, e.message))?;
            entries.push(BatchEntry {
                image,
                place: format!("{shown}:{number}"),
                line: number,
                manifest,
                arguments,
            });
        }
        if entries.is_empty() {
            return Err(error(
                0,
                0,
                "names no image (each line: IMAGE PLUGIN VERSION [--NAME VALUE]...)".into(),
            ));
        }
        Ok(entries)
    }

    /// One line's manifest, loaded, and its arguments, parsed and checked
    /// against it.
    fn load_line(
        &self,
        base: &Path,
        spec: &LineSpec,
    ) -> Result<(Manifest, BTreeMap<String, String>), LineError> {
        let (name, column) = &spec.manifest;
        let at_name = |message: String| LineError::at(*column, message);
        let name = match name {
            ManifestName::File(path) => ManifestName::File(base.join(path)),
            ManifestName::Plugin { plugin, version } => ManifestName::Plugin {
                plugin: plugin.clone(),
                version: version.clone(),
            },
        };
        let (path, _) = name.locate(self.dirs).map_err(|e| at_name(e.to_string()))?;
        let manifest = self
            .kiln
            .load(&path, self.load_options)
            .map_err(|e| at_name(e.to_string()))?;
        let words: Vec<String> = spec.words.iter().map(|w| w.text.clone()).collect();
        let pairs: Vec<String> = spec.arg_pairs.iter().map(|w| w.text.clone()).collect();
        let parsed = plugin_args::parse_located(&manifest, &words, &pairs, self.own);
        let arguments =
            match parsed {
                Ok(PluginArgs::Values(values)) => values,
                Ok(PluginArgs::Help) => return Err(at_name(
                    "--help has no place in a batch file; run `kiln pack PLUGIN VERSION --help`"
                        .into(),
                )),
                Err(located) => {
                    let column = match located.at {
                        WordAt::Word(index) => spec.words[index].column,
                        WordAt::Pair(index) => spec.arg_pairs[index].column,
                    };
                    // kiln's own options apply to every line: on the command line.
                    let message = located.error.to_string().replace(
                        "; put it before PLUGIN VERSION",
                        "; in a batch file it goes on the command line, for every line",
                    );
                    return Err(LineError::at(column, message));
                }
            };
        kiln::interpreter::resolve_arguments(&manifest, &arguments)
            .map_err(|e| at_name(format!("bad plugin arguments: {e}")))?;
        Ok((manifest, arguments))
    }
}

/// The file's text, refused when it is too large or not UTF-8.
fn read_bounded(file: &Path) -> Result<String, String> {
    use std::io::Read;
    let opened = std::fs::File::open(file).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    opened
        .take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(format!(
            "larger than {} KiB; a batch file names one image a line",
            MAX_BYTES / 1024
        ));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(line: &str) -> Vec<(String, usize)> {
        split_words(line)
            .unwrap()
            .into_iter()
            .map(|w| (w.text, w.column))
            .collect()
    }

    fn owned(pairs: &[(&str, usize)]) -> Vec<(String, usize)> {
        pairs.iter().map(|(t, c)| (t.to_string(), *c)).collect()
    }

    #[test]
    fn words_split_on_white_space_with_their_columns() {
        assert_eq!(
            texts("  a.qcow2\tdemo  1.0 --motd hi"),
            owned(&[
                ("a.qcow2", 3),
                ("demo", 11),
                ("1.0", 17),
                ("--motd", 21),
                ("hi", 28)
            ])
        );
        assert!(texts("").is_empty());
        assert!(texts("   \t ").is_empty());
    }

    #[test]
    fn quotes_and_backslashes_work_as_in_a_shell() {
        assert_eq!(
            texts(r#"x --motd 'two words' --b "say \"hi\" \n""#),
            owned(&[
                ("x", 1),
                ("--motd", 3),
                ("two words", 10),
                ("--b", 22),
                (r#"say "hi" \n"#, 26)
            ])
        );
        // Quoted parts and plain ones make one word; nothing expands.
        assert_eq!(
            texts(r#"a'b c'"d"e \$HOME\ x '$x'"#),
            owned(&[("ab cde", 1), ("$HOME x", 12), ("$x", 22)])
        );
        assert_eq!(texts("a '' b"), owned(&[("a", 1), ("", 3), ("b", 6)]));
    }

    #[test]
    fn a_hash_starting_a_word_comments_out_the_rest() {
        assert!(texts("# a comment").is_empty());
        assert!(texts("   # indented").is_empty());
        assert_eq!(
            texts("a.qcow2 demo 1.0 # the first"),
            owned(&[("a.qcow2", 1), ("demo", 9), ("1.0", 14)])
        );
        assert_eq!(texts("a#b '#c'"), owned(&[("a#b", 1), ("#c", 5)]));
    }

    #[test]
    fn an_unterminated_quote_names_its_column() {
        let error = |line: &str| split_words(line).unwrap_err();
        assert_eq!(
            error("a.qcow2 demo 1.0 --motd 'hello"),
            LineError::at(25, "this ' is never closed")
        );
        assert_eq!(
            error(r#"a "b \" c"#),
            LineError::at(3, "this \" is never closed")
        );
        assert_eq!(error("a b\\").column, 4);
    }

    fn line(text: &str) -> Result<LineSpec, LineError> {
        parse_line(split_words(text).unwrap())
    }

    fn word_texts(words: &[Word]) -> Vec<&str> {
        words.iter().map(|w| w.text.as_str()).collect()
    }

    #[test]
    fn a_line_is_image_manifest_then_arguments() {
        let spec = line("a.qcow2 demo 1.0 --motd 'hi there' --tools=full").unwrap();
        assert_eq!(spec.image.text, "a.qcow2");
        assert_eq!(
            spec.manifest,
            (
                ManifestName::Plugin {
                    plugin: "demo".into(),
                    version: "1.0".into()
                },
                9
            )
        );
        assert_eq!(
            word_texts(&spec.words),
            ["--motd", "hi there", "--tools=full"]
        );
        assert!(spec.arg_pairs.is_empty());

        let spec = line("../b.raw my/image.yaml -x 1").unwrap();
        assert_eq!(
            spec.manifest,
            (ManifestName::File("my/image.yaml".into()), 10)
        );
        assert_eq!(word_texts(&spec.words), ["-x", "1"]);
    }

    #[test]
    fn arg_pairs_stand_before_or_after_the_manifest() {
        let spec =
            line("a --arg motd=x --arg=tools=full demo 1.0 --arg a=b --motd --arg --c=d").unwrap();
        assert_eq!(word_texts(&spec.arg_pairs), ["motd=x", "tools=full", "a=b"]);
        assert_eq!(spec.arg_pairs[1].column, 16);
        // `--arg` as an option's value is that value, as on the command line.
        assert_eq!(word_texts(&spec.words), ["--motd", "--arg", "--c=d"]);
        // `-xVALUE` holds its value: the `--arg` after it is kiln's.
        let spec = line("a demo 1.0 -xy --arg a=b -x --arg").unwrap();
        assert_eq!(word_texts(&spec.arg_pairs), ["a=b"]);
        assert_eq!(word_texts(&spec.words), ["-xy", "-x", "--arg"]);
    }

    #[test]
    fn a_bad_line_names_the_word_at_fault() {
        assert_eq!(
            line("a demo").unwrap_err().column,
            3,
            "a plugin needs a version"
        );
        let error = line("a.qcow2").unwrap_err();
        assert_eq!(error.column, 1);
        assert!(error.message.contains("name a manifest"), "{error:?}");
        let error = line("--test-only a demo 1.0").unwrap_err();
        assert_eq!(error.column, 1);
        assert!(error.message.contains("kiln's own options"), "{error:?}");
        assert_eq!(line("a demo 1.0 --arg").unwrap_err().column, 12);
        assert_eq!(line("a --motd x demo 1.0").unwrap_err().column, 3);
    }
}
