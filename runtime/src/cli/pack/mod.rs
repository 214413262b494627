//! `kiln pack`: sahara-image-pack's interface over the disk-image target.
//! Opens the image (read-only for `--test-only`, through an overlay
//! otherwise), runs the manifest, and commits only when every validator
//! passed; anything else leaves the image as it was. Several `--image`s
//! go through one appliance boot (`batch`), each with its own run, commit
//! and result; so do the lines of a `--batch FILE` (`batch_file` reads and
//! checks them), each with its own manifest and arguments too.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use kiln::text::one_line;

use super::progress::{self, print_line, print_line_logging, CommandLog, Progress};
use super::report::Reporter;
use super::target_result::TargetResult;
use super::{prepare, shown_path, Common, ManifestChoice, Paint, Prepared, Style};

pub const AFTER_HELP: &str = "\
kiln's options go before PLUGIN VERSION (or a manifest path); only what follows it is the plugin's,
as --NAME VALUE. `kiln pack PLUGIN VERSION --help` lists the plugin's arguments.

Examples:
  kiln pack --image debian.qcow2 demo 1.0
  kiln pack --image debian.qcow2 --test-only demo 1.0
  kiln pack --image a.qcow2 --image b.qcow2 --image c.qcow2 demo 1.0
  kiln pack --batch images.txt     # lines like: centos.qcow2 demo 1.0 --tools full
  kiln pack --image CentOS.qcow2 --config-file etc/sahara/sahara.conf cdh 5.7.0 --java_distro openjdk
  kiln pack --image base.qcow2 --output packed.qcow2 my/image.yaml --motd hello
  kiln pack --image base.qcow2 --manifest my/image.yaml --arg motd=hello";

#[derive(Args, Clone)]
pub struct PackArgs {
    /// The disk image to pack or check (qcow2 or raw). It is changed only
    /// when every validator passes. Repeat it to pack several images with
    /// the same manifest and arguments in one appliance boot: each image
    /// gets its own run, commit and result, and kiln exits 0 only when
    /// every one passed. [default: a config file's `[DEFAULT] image`]
    #[arg(long, value_name = "PATH")]
    image: Vec<PathBuf>,

    /// Pack (or check) the images FILE names, each with its own manifest
    /// and arguments, in one appliance boot. One image a line:
    /// `IMAGE PLUGIN VERSION [--NAME VALUE]...` (or a manifest path for
    /// PLUGIN VERSION; `--arg NAME=VALUE` works too); words split as a
    /// shell splits simple ones ('...' and "..." quote, `#` starts a
    /// comment); relative paths are relative to FILE's directory. Every
    /// line is checked before anything launches. Takes the place of
    /// --image, the manifest's name and the plugin's arguments (and so
    /// does not go with them, nor with --output); the other options apply
    /// to every line.
    #[arg(long, value_name = "FILE")]
    batch: Option<PathBuf>,

    /// The root file system to use when the image holds several systems
    /// (for example /dev/sda2).
    #[arg(long, value_name = "DEV")]
    root_filesystem: Option<String>,

    /// Change nothing: open the image read-only and fail if it does not
    /// match the manifest. [default: a config file's `[DEFAULT] test_only`]
    #[arg(long, overrides_with = "notest_only")]
    test_only: bool,

    /// Pack (undo an earlier --test-only or the config's `test_only`; of
    /// the two options the last one wins, as with oslo).
    #[arg(long, overrides_with = "test_only")]
    notest_only: bool,

    /// Write the packed image to NEW and leave --image untouched. NEW
    /// must be another file than --image; with several images there is no
    /// one result to name, so it is refused.
    #[arg(long, value_name = "NEW", conflicts_with = "test_only")]
    output: Option<PathBuf>,

    /// After a successful pack, relabel an SELinux guest's files as
    /// virt-customize does (setfiles with the policy named in the guest's
    /// /etc/selinux/config; /.autorelabel when that cannot run). A guest
    /// without an SELinux policy is left as it is, with a note.
    #[arg(long, conflicts_with = "test_only")]
    selinux_relabel: bool,

    /// After a successful pack, run the manifest again in test-only mode in
    /// the same appliance before committing.
    #[arg(long)]
    verify: bool,

    /// How the libguestfs appliance runs: hardware acceleration with a
    /// fallback to emulation, or forced either way [default: auto].
    #[arg(long, value_enum, value_name = "MODE")]
    accel: Option<AccelArg>,

    /// Give the appliance no network (package installs will fail).
    #[arg(long)]
    no_network: bool,

    /// How commands reach the guest: `chroot` prepares the guest once per
    /// session (/dev, /proc, /sys and the appliance's resolver) and runs
    /// each command in it; `sh` is libguestfs's own `sh`, which redoes that
    /// preparation around every command (about 0.7 s each under emulation).
    #[arg(long, value_enum, value_name = "HOW", default_value = "chroot")]
    commands: CommandsArg,

    /// Find the guest's OS with libguestfs's full inspection only. By
    /// default kiln recognises plain partition layouts with an os-release
    /// itself (seconds faster) and leaves the rest (LVM, RAID, several
    /// systems, older distros) to libguestfs.
    #[arg(long)]
    full_inspection: bool,

    #[command(flatten)]
    target: ManifestChoice,
}

#[derive(Clone, Copy, ValueEnum)]
enum CommandsArg {
    Chroot,
    Sh,
}

#[derive(Clone, Copy, ValueEnum)]
enum AccelArg {
    Auto,
    Kvm,
    Tcg,
}

#[allow(dead_code)] // kiln-pack's PackVerb; kiln hands pack over (hand_over.rs)
pub fn run(common: &Common, style: Style, args: &PackArgs) -> Result<i32> {
    let mut reporter = Reporter::new("pack", &args.target.output, args.test_only);
    for image in &args.image {
        reporter.plan("image", &image_name(image));
    }
    let result = reporter
        .start(style.quiet)
        .and_then(|()| pack(common, style, args, &mut reporter));
    reporter.finish(result)
}

/// The image as reports and summaries name it.
fn image_name(image: &std::path::Path) -> String {
    format!("image {}", image.display())
}

fn pack(common: &Common, style: Style, args: &PackArgs, reporter: &mut Reporter) -> Result<i32> {
    if let Some(file) = &args.batch {
        return pack_batch_file(common, style, args, file, reporter);
    }
    // Refusals that need no manifest come first: nothing is loaded,
    // nothing launched.
    refuse_image_choices(&args.image, args.output.as_deref())?;
    let prepared = prepare(common, &args.target, "pack")?;
    let Some(Prepared {
        kiln,
        manifest,
        arguments,
        config,
    }) = prepared
    else {
        return Ok(0);
    };
    reporter.manifest_loaded(&manifest, &arguments);
    let args = &with_config_defaults(args, &config, reporter)?;
    if args.image.is_empty() {
        anyhow::bail!("--image PATH is required: the disk image to pack (or `image` in a config file's [DEFAULT])");
    }
    let accel = accel_choice(args, &config)?;
    image_target::pack(
        common, style, args, &kiln, &manifest, &arguments, accel, reporter,
    )
}

/// `--accel`, else the config's `accel`, else auto.
fn accel_choice(args: &PackArgs, config: &super::config::Config) -> Result<AccelArg> {
    Ok(match (args.accel, config.accel.as_deref()) {
        (Some(accel), _) => accel,
        (None, None) => AccelArg::Auto,
        (None, Some(name)) => AccelArg::from_str(name, true).map_err(|_| {
            anyhow::anyhow!("config: accel must be auto, kvm or tcg, found `{name}`")
        })?,
    })
}

/// `--batch FILE`: refusals first, then the config, the kiln, and every
/// line loaded and checked (a bad line costs no boot), then one batch.
fn pack_batch_file(
    common: &Common,
    style: Style,
    args: &PackArgs,
    file: &std::path::Path,
    reporter: &mut Reporter,
) -> Result<i32> {
    refuse_with_batch(args, file)?;
    if let Some(limit) = args.target.timeout {
        kiln::interrupt::start_deadline(limit)
            .map_err(|e| anyhow::anyhow!("starting the --timeout timer: {e}"))?;
    }
    let (config, dirs) = args.target.lookup.load()?;
    let kiln = common.kiln(&config)?;
    let args = &with_config_defaults(args, &config, reporter)?;
    let own = super::own_options(Some("pack"));
    let loader = batch_file::Loader {
        kiln: &kiln,
        dirs: &dirs,
        load_options: &common.load_options(&config.resource_roots),
        own: &own,
    };
    let entries = loader.load(file)?;
    let accel = accel_choice(args, &config)?;
    image_target::pack_entries(common, style, args, &kiln, file, &entries, accel, reporter)
}

/// What `--batch FILE` takes the place of, refused in one line before
/// anything is read.
fn refuse_with_batch(args: &PackArgs, file: &std::path::Path) -> Result<()> {
    let file = file.display();
    let instead = |what: &str| -> Result<()> {
        anyhow::bail!(
            "--batch {file} names each image with its manifest and arguments, so {what} does not go with it; put it in the file's lines"
        )
    };
    if let Some(image) = args.image.first() {
        return instead(&format!("--image {}", image.display()));
    }
    if let Some(word) = args.target.words.first() {
        return instead(&format!("`{}`", word.to_string_lossy()));
    }
    if let Some(manifest) = &args.target.manifest {
        return instead(&format!("--manifest {}", manifest.display()));
    }
    if let Some(pair) = args.target.args.first() {
        return instead(&format!("--arg {pair}"));
    }
    if let Some(output) = &args.output {
        anyhow::bail!(
            "--output {} names one result, but --batch {file} names an image a line; leave --output out to pack each image in place",
            output.display()
        );
    }
    Ok(())
}

/// `--image` and `--output` refusals: one result file cannot take several
/// images, one image cannot be packed twice in one appliance, and
/// `--output` must not be the image itself.
fn refuse_image_choices(images: &[PathBuf], output: Option<&std::path::Path>) -> Result<()> {
    if let (true, Some(output)) = (images.len() > 1, output) {
        anyhow::bail!(
            "--output {} names one result, but {} images were given; leave --output out to pack each image in place",
            output.display(),
            images.len()
        );
    }
    for (index, image) in images.iter().enumerate() {
        if let Some(earlier) = images[..index].iter().find(|e| same_file(e, image)) {
            anyhow::bail!(
                "--image {} is the same file as --image {}; each image can be packed only once per run",
                image.display(),
                earlier.display()
            );
        }
    }
    if let ([image], Some(output)) = (images, output) {
        if same_file(image, output) {
            anyhow::bail!(
                "--output {} is the image itself ({}); name a new file, or leave --output out to pack the image in place",
                output.display(),
                image.display()
            );
        }
    }
    Ok(())
}

/// The arguments with sahara.conf's `[DEFAULT] image` and `test_only`
/// filled in where the command line gave neither (it wins), and the
/// refusals `--output` needs checked again with them.
fn with_config_defaults(
    args: &PackArgs,
    config: &super::config::Config,
    reporter: &mut Reporter,
) -> Result<PackArgs> {
    let mut resolved = args.clone();
    // A batch file names its images; the config's image is not one of them.
    if resolved.image.is_empty() && args.batch.is_none() {
        if let Some(image) = &config.image {
            reporter.plan("image", &image_name(image));
            resolved.image = vec![image.clone()];
        }
    }
    if !args.test_only && !args.notest_only {
        resolved.test_only = config.test_only.unwrap_or(false);
        reporter.set_test_only(resolved.test_only);
    }
    if let (true, Some(output)) = (resolved.test_only, &resolved.output) {
        anyhow::bail!(
            "--output {} does not go with test-only mode (the config file's `test_only` is true); a test-only run writes nothing, so pass --notest-only or leave --output out",
            output.display()
        );
    }
    refuse_image_choices(&resolved.image, resolved.output.as_deref())?;
    Ok(resolved)
}

/// Whether two paths are one file: the same inode when both exist (so a
/// symlink or another spelling is caught), else the same place once the
/// directories are resolved.
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if let (Ok(a), Ok(b)) = (std::fs::metadata(a), std::fs::metadata(b)) {
        return a.dev() == b.dev() && a.ino() == b.ino();
    }
    fn location(path: &std::path::Path) -> Option<PathBuf> {
        let absolute = std::path::absolute(path).ok()?;
        if let Ok(canonical) = absolute.canonicalize() {
            return Some(canonical);
        }
        let parent = absolute.parent()?.canonicalize().ok()?;
        Some(parent.join(absolute.file_name()?))
    }
    match (location(a), location(b)) {
        (Some(a), Some(b)) => a == b,
        // Unresolvable (a missing directory): compare as written.
        _ => std::path::absolute(a).ok() == std::path::absolute(b).ok(),
    }
}

#[cfg(feature = "image-target")]
mod batch;
mod batch_file;

#[cfg(feature = "image-target")]
mod image_target {
    use super::batch::BatchJob;
    use super::*;
    use kiln::interpreter::RunSummary;
    use kiln::manifest::Manifest;
    use kiln::remote::image::{Accel, CommandChannel, ImageOptions, ImageRemote, Inspector};
    use kiln::Kiln;
    use std::collections::BTreeMap;
    use std::path::Path;

    #[allow(clippy::too_many_arguments)]
    pub fn pack(
        common: &Common,
        style: Style,
        args: &PackArgs,
        kiln: &Kiln,
        manifest: &Manifest,
        arguments: &BTreeMap<String, String>,
        accel: AccelArg,
        reporter: &mut Reporter,
    ) -> Result<i32> {
        let options = image_options(args, accel);
        let image = match &args.image[..] {
            [image] => image,
            images => {
                let jobs: Vec<_> = images
                    .iter()
                    .map(|image| BatchJob {
                        image: image.clone(),
                        manifest,
                        arguments,
                        place: None,
                    })
                    .collect();
                let run = super::batch::BatchRun {
                    common,
                    style,
                    args,
                    kiln,
                    jobs: &jobs,
                    with: shown_path(&manifest.path),
                };
                return run.pack(&options, reporter);
            }
        };
        let options = ImageOptions {
            image: image.clone(),
            ..options
        };
        let started = reporter.started();
        // Lines name the image and the manifest, and pass on what opening
        // the image noted: escaped as a whole.
        let say = |text: &str| {
            let line = format!(
                "[{:>6.1}] {}",
                started.elapsed().as_secs_f64(),
                one_line(text)
            );
            if style.quiet {
                progress::log_only(&line);
            } else {
                print_line(&line);
            }
        };
        let mode = if args.test_only {
            "checking (read-only)"
        } else {
            "packing"
        };
        say(&format!(
            "{mode} {} with {}",
            shown_path(image),
            shown_path(&manifest.path)
        ));
        // ImageRemote::open reports no phases of its own: one step covers
        // the boot and the inspection.
        progress::step_start("", "opening the image (booting the appliance, inspecting)");
        let opened = ImageRemote::open(&options, &mut |note: &str| say(note));
        progress::steps_clear("");
        let session = match opened {
            Ok(session) => session,
            Err(error) => {
                if let Some(code) = interrupted(image, None, style, reporter) {
                    return Ok(code);
                }
                reporter.add_failed(
                    "image",
                    &image_name(image),
                    TargetResult::Error,
                    &error.to_string(),
                    started.elapsed(),
                );
                return Err(error.into());
            }
        };
        say(&ready_line(&session));
        let commands = CommandLog::default();
        let observer = |offset| {
            Box::new(Progress::new(
                String::new(),
                common.verbose,
                style,
                offset,
                commands.clone(),
            ))
        };
        let (summary, mut session) = run_manifest(
            kiln,
            manifest,
            arguments,
            args,
            session,
            &|| observer(started.elapsed()),
            &say,
        );
        if let Some(stop) = kiln::interrupt::requested() {
            session.discard();
            // The report shows which validator the stop cut short.
            reporter.add_run(
                "image",
                &image_name(image),
                TargetResult::after(stop),
                &summary,
                started.elapsed(),
                &commands,
            );
            return Ok(interrupted(image, None, style, reporter).unwrap_or(stop.exit_code()));
        }
        if let Some(note) = slow_channel_note(
            options.command_channel == CommandChannel::SessionChroot,
            &session,
        ) {
            say(note);
        }
        if summary.passed() && !args.test_only && args.selinux_relabel {
            say("relabelling SELinux files");
            progress::step_start("", "relabelling SELinux files");
            let relabelled = session.selinux_relabel();
            progress::steps_clear("");
            match relabelled {
                Ok(outcome) => say(&outcome.to_string()),
                Err(error) => {
                    session.discard();
                    return interrupted(image, None, style, reporter)
                        .map_or_else(|| Err(error.into()), Ok);
                }
            }
        }
        if summary.passed() && !args.test_only {
            say("committing the changes");
            progress::step_start("", "committing the changes");
            let written = session.commit();
            progress::steps_clear("");
            let written = match written {
                Ok(written) => written,
                Err(error) => {
                    return interrupted(image, None, style, reporter)
                        .map_or_else(|| Err(error.into()), Ok)
                }
            };
            if let Some(path) = &written.written {
                say(&format!(
                    "wrote {} ({:.1} s)",
                    shown_path(path),
                    written.elapsed.as_secs_f64()
                ));
            }
            if let Some(code) = interrupted(image, written.written.as_deref(), style, reporter) {
                return Ok(code);
            }
        } else {
            session.discard();
            if !args.test_only {
                say(&format!("{} left unchanged", shown_path(image)));
            }
        }
        let summary_lines = progress::summary_text(&summary);
        if !style.quiet {
            summary_lines.lines().for_each(print_line);
        } else {
            summary_lines.lines().for_each(progress::log_only);
            if let Err(error) = &summary.outcome {
                // Quiet still says why, as an error.
                eprintln!("kiln: {}", progress::failure_line(error));
            }
        }
        let closing = |passed: &str, failed: &str| {
            format!(
                "{} in {:.1} s",
                if summary.passed() { passed } else { failed },
                started.elapsed().as_secs_f64()
            )
        };
        print_line_logging(
            &closing(
                &style.paint("PASSED", Paint::Good),
                &style.paint("FAILED", Paint::Bad),
            ),
            &closing("PASSED", "FAILED"),
        );
        let result = match &summary.outcome {
            Ok(()) => TargetResult::Passed,
            Err(kiln::interpreter::RunError::Unreachable { .. }) => TargetResult::Unreachable,
            Err(_) => TargetResult::Failed,
        };
        reporter.add_run(
            "image",
            &image_name(image),
            result,
            &summary,
            started.elapsed(),
            &commands,
        );
        Ok(if summary.passed() { 0 } else { 1 })
    }

    /// The manifest on one open image and, after a passing pack with
    /// `--verify`, its test-only pass in the same appliance, merged into
    /// one summary: the one place a one-image pack and each image of a
    /// batch run it. `observer` makes each pass's progress observer (its
    /// offset taken when it is called); `say` prints the verify pass's note.
    pub(super) fn run_manifest(
        kiln: &Kiln,
        manifest: &Manifest,
        arguments: &BTreeMap<String, String>,
        args: &PackArgs,
        session: ImageRemote,
        observer: &dyn Fn() -> Box<Progress>,
        say: &dyn Fn(&str),
    ) -> (RunSummary, ImageRemote) {
        let (summary, session) = kiln.run(manifest, session, arguments, args.test_only, observer());
        if !(summary.passed() && args.verify && !args.test_only) {
            return (summary, session);
        }
        say("verifying: running the manifest again in test-only mode");
        let (verified, session) = kiln.run(manifest, session, arguments, true, observer());
        (merge_verify(summary, verified), session)
    }

    /// `--batch FILE`'s images, each with its line's manifest and
    /// arguments, in one appliance boot.
    #[allow(clippy::too_many_arguments)]
    pub fn pack_entries(
        common: &Common,
        style: Style,
        args: &PackArgs,
        kiln: &Kiln,
        file: &Path,
        entries: &[super::batch_file::BatchEntry],
        accel: AccelArg,
        reporter: &mut Reporter,
    ) -> Result<i32> {
        let jobs: Vec<_> = entries
            .iter()
            .map(|entry| BatchJob {
                image: entry.image.clone(),
                manifest: &entry.manifest,
                arguments: &entry.arguments,
                place: Some(entry.place.clone()),
            })
            .collect();
        for job in &jobs {
            reporter.plan("image", &job.name());
        }
        let run = super::batch::BatchRun {
            common,
            style,
            args,
            kiln,
            jobs: &jobs,
            with: format!("the manifests {} names", shown_path(file)),
        };
        run.pack(&image_options(args, accel), reporter)
    }

    /// The session options every image of the run shares (`image` is
    /// filled in per image).
    pub(super) fn image_options(args: &PackArgs, accel: AccelArg) -> ImageOptions {
        ImageOptions {
            image: PathBuf::new(),
            root_filesystem: args.root_filesystem.clone(),
            test_only: args.test_only,
            accel: match accel {
                AccelArg::Auto => Accel::Auto,
                AccelArg::Kvm => Accel::Kvm,
                AccelArg::Tcg => Accel::Tcg,
            },
            output: args.output.clone(),
            network: !args.no_network,
            command_channel: match args.commands {
                CommandsArg::Chroot => CommandChannel::SessionChroot,
                CommandsArg::Sh => CommandChannel::DaemonSh,
            },
            full_inspection: args.full_inspection,
        }
    }

    /// After SIGINT/SIGTERM or `--timeout` (see `kiln::interrupt`): says
    /// what became of the image and gives the exit status (130, 143, 124),
    /// else `None`. The session has cleaned up by then: no qemu, overlay or
    /// staged file.
    fn interrupted(
        image: &Path,
        written: Option<&Path>,
        style: Style,
        reporter: &mut Reporter,
    ) -> Option<i32> {
        let stop = kiln::interrupt::requested()?;
        let message = match written {
            Some(path) => format!("{stop} after the commit; {} was written", shown_path(path)),
            None => format!("{stop}; {} unchanged", shown_path(image)),
        };
        Some(stopped_with(stop, &message, style, reporter))
    }

    /// Says `message` about a stop, closes with TIMED OUT after
    /// `--timeout`, records it in the report and gives the exit status.
    pub(super) fn stopped_with(
        stop: kiln::interrupt::Stop,
        message: &str,
        style: Style,
        reporter: &mut Reporter,
    ) -> i32 {
        eprintln!("kiln: {message}");
        if let kiln::interrupt::Stop::Timeout(limit) = stop {
            // A deadline is a result a CI job reads, not a keypress: the
            // closing line and the report say it too.
            let closing = |word: &str| {
                format!(
                    "{word} after {} (--timeout), in {:.1} s",
                    kiln::interrupt::show_duration(limit),
                    reporter.started().elapsed().as_secs_f64()
                )
            };
            print_line_logging(
                &closing(&style.paint("TIMED OUT", Paint::Bad)),
                &closing("TIMED OUT"),
            );
        }
        reporter.stopped(&stop, message);
        stop.exit_code()
    }

    /// The progress line once an image is open: which inspection found
    /// its OS.
    pub(super) fn ready_line(session: &ImageRemote) -> String {
        let inspection = match session.inspector() {
            Inspector::Quick => "quick inspection",
            Inspector::Libguestfs => "libguestfs inspection",
        };
        format!("image ready ({inspection})")
    }

    /// The note for a run that wanted the session chroot but whose
    /// appliance could only run commands through libguestfs's `sh`.
    pub(super) fn slow_channel_note(
        wanted_chroot: bool,
        session: &ImageRemote,
    ) -> Option<&'static str> {
        (wanted_chroot && session.command_channel() == Some(CommandChannel::DaemonSh)).then_some(
            "note: this libguestfs appliance has no `debug sh`, so commands went through libguestfs's slower `sh`",
        )
    }

    /// The pack's records with the verify pass's outcome: a pack whose
    /// result does not pass its own test-only run has failed.
    fn merge_verify(mut pack: RunSummary, verify: RunSummary) -> RunSummary {
        pack.commands += verify.commands;
        pack.elapsed += verify.elapsed;
        if let Err(error) = verify.outcome {
            pack.outcome = Err(error);
        }
        pack
    }
}

#[cfg(not(feature = "image-target"))]
mod image_target {
    use super::*;

    #[allow(clippy::too_many_arguments)]
    pub fn pack(
        _: &Common,
        _: Style,
        _: &PackArgs,
        _: &kiln::Kiln,
        _: &kiln::manifest::Manifest,
        _: &std::collections::BTreeMap<String, String>,
        _: AccelArg,
        _: &mut Reporter,
    ) -> Result<i32> {
        anyhow::bail!("this kiln was built without the disk-image target; rebuild with the `image-target` feature (needs libguestfs-dev)")
    }

    #[allow(clippy::too_many_arguments)]
    pub fn pack_entries(
        _: &Common,
        _: Style,
        _: &PackArgs,
        _: &kiln::Kiln,
        _: &std::path::Path,
        _: &[super::batch_file::BatchEntry],
        _: AccelArg,
        _: &mut Reporter,
    ) -> Result<i32> {
        anyhow::bail!("this kiln was built without the disk-image target; rebuild with the `image-target` feature (needs libguestfs-dev)")
    }
}
