//! `kiln pack` with several `--image`s, or the lines of a `--batch` file:
//! one appliance boot for all of them ([`ImageBatch`]), then per image in
//! the order given its own run of its manifest with its arguments (the
//! same for every `--image`, each line's own in a batch file; and
//! `--verify`, `--selinux-relabel`), its own result and
//! report entry, and at the end one shut-down and a commit of each image
//! that passed. An image that fails, or cannot be opened, is left as it
//! was and the others go on; an appliance that dies takes the images not
//! yet run with it (reported unreachable) and keeps every image unchanged.
//! A stop (Ctrl-C, SIGTERM, `--timeout`) before the commit changes no image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;
use kiln::interpreter::{RunError, RunSummary};
use kiln::manifest::Manifest;
use kiln::remote::image::{BatchMember, ImageBatch, ImageError, ImageOptions};
use kiln::text::one_line;
use kiln::Kiln;

use super::super::progress::{self, print_line, print_line_logging, CommandLog, Progress};
use super::super::report::Reporter;
use super::super::target_result::TargetResult;
use super::super::{shown_path, Common, Paint, Style};
use super::image_target::{ready_line, run_manifest, slow_channel_note, stopped_with};
use super::{image_name, PackArgs};

/// What one batch run needs: its images, each with the manifest and
/// arguments it runs (the same for every `--image`, a line's own with
/// `--batch FILE`).
pub(super) struct BatchRun<'a> {
    pub common: &'a Common,
    pub style: Style,
    pub args: &'a PackArgs,
    pub kiln: &'a Kiln,
    pub jobs: &'a [BatchJob<'a>],
    /// What the opening line says the images are packed with.
    pub with: String,
}

/// One image of a batch and what it runs.
pub(super) struct BatchJob<'a> {
    pub image: PathBuf,
    pub manifest: &'a Manifest,
    pub arguments: &'a BTreeMap<String, String>,
    /// The `--batch` file's `FILE:LINE` that named it.
    pub place: Option<String>,
}

impl BatchJob<'_> {
    /// As reports name it: `image PATH`, with its batch line.
    pub(super) fn name(&self) -> String {
        match &self.place {
            Some(place) => format!("{} ({place})", image_name(&self.image)),
            None => image_name(&self.image),
        }
    }

    /// As progress and closing lines show it.
    fn shown(&self) -> String {
        match &self.place {
            Some(place) => format!(
                "{} ({})",
                shown_path(&self.image),
                shown_path(Path::new(place))
            ),
            None => shown_path(&self.image),
        }
    }
}

/// One image's result so far, reported once the commit has decided it.
struct ImageOutcome {
    /// Its index in the batch's jobs.
    job: usize,
    result: TargetResult,
    /// `None` when the image never ran (it could not be opened).
    summary: Option<RunSummary>,
    /// Why it failed outside its validators (opening, closing, committing).
    problem: Option<String>,
    commands: CommandLog,
    elapsed: Duration,
    /// Its run passed and it waits for the commit.
    keep: bool,
}

impl ImageOutcome {
    fn not_run(job: usize, result: TargetResult, problem: String) -> ImageOutcome {
        ImageOutcome {
            job,
            result,
            summary: None,
            problem: Some(problem),
            commands: CommandLog::default(),
            elapsed: Duration::ZERO,
            keep: false,
        }
    }

    /// A problem after the run (closing, committing) turns a pass into
    /// `result`; the image was not written.
    fn spoil(&mut self, result: TargetResult, problem: String) {
        if self.result == TargetResult::Passed {
            self.result = result;
        }
        self.keep = false;
        self.problem.get_or_insert(problem);
    }
}

impl BatchRun<'_> {
    fn say(&self, started: Instant, text: &str) {
        let line = format!(
            "[{:>6.1}] {}",
            started.elapsed().as_secs_f64(),
            one_line(text)
        );
        if self.style.quiet {
            progress::log_only(&line);
        } else {
            print_line(&line);
        }
    }

    pub(super) fn pack(&self, options: &ImageOptions, reporter: &mut Reporter) -> Result<i32> {
        let images: Vec<PathBuf> = self.jobs.iter().map(|j| j.image.clone()).collect();
        let started = reporter.started();
        let mode = if self.args.test_only {
            "checking (read-only)"
        } else {
            "packing"
        };
        self.say(
            started,
            &format!(
                "{mode} {} images in one appliance with {}",
                images.len(),
                self.with
            ),
        );
        progress::step_start("", "opening the images (booting one appliance)");
        let opened = ImageBatch::open(&images, options, &mut |note: &str| self.say(started, note));
        progress::steps_clear("");
        let mut batch = match opened {
            Ok(batch) => batch,
            Err(error) => {
                if let Some(stop) = kiln::interrupt::requested() {
                    let message = format!("{stop}; every image unchanged");
                    return Ok(stopped_with(stop, &message, self.style, reporter));
                }
                for job in self.jobs {
                    let message = error.to_string();
                    reporter.target_manifest(job.manifest);
                    reporter.add_failed(
                        "image",
                        &job.name(),
                        TargetResult::Error,
                        &message,
                        started.elapsed(),
                    );
                }
                return Err(error.into());
            }
        };
        self.say(
            started,
            &format!("appliance ready for {} images", images.len()),
        );
        let mut outcomes = Vec::with_capacity(images.len());
        for index in 0..self.jobs.len() {
            if kiln::interrupt::requested().is_some() {
                break;
            }
            outcomes.push(self.pack_one(&mut batch, index, started));
        }
        if let Some(stop) = kiln::interrupt::requested() {
            batch.discard();
            return Ok(self.stopped(stop, outcomes, reporter));
        }
        self.commit(batch, &mut outcomes, started);
        if let Some(stop) = kiln::interrupt::requested() {
            return Ok(self.stopped_in_commit(stop, outcomes, reporter));
        }
        Ok(self.close(outcomes, started, reporter))
    }

    /// Image `index`'s turn: open it on the shared appliance, run the
    /// manifest, hand the appliance back.
    fn pack_one(&self, batch: &mut ImageBatch, index: usize, started: Instant) -> ImageOutcome {
        let began = Instant::now();
        let job = &self.jobs[index];
        let with = match &job.place {
            Some(_) => format!(" with {}", shown_path(&job.manifest.path)),
            None => String::new(),
        };
        self.say(
            started,
            &format!(
                "image {}/{}: {}{with}",
                index + 1,
                self.jobs.len(),
                job.shown()
            ),
        );
        progress::step_start("", "opening the image (inspecting, mounting)");
        let opened = batch.open_image(index, &mut |note: &str| self.say(started, note));
        progress::steps_clear("");
        let session = match opened {
            Ok(session) => session,
            Err(error) => {
                let result = match error {
                    ImageError::ApplianceGone { .. } => TargetResult::Unreachable,
                    _ if kiln::interrupt::requested().is_some() => {
                        TargetResult::after(kiln::interrupt::requested().unwrap())
                    }
                    _ => TargetResult::Error,
                };
                self.say(started, &format!("{}: {error}", result.shouted()));
                return ImageOutcome::not_run(index, result, error.to_string());
            }
        };
        self.say(started, &ready_line(&session));
        let commands = CommandLog::default();
        let observer = || {
            Box::new(Progress::new(
                String::new(),
                self.common.verbose,
                self.style,
                started.elapsed(),
                commands.clone(),
            ))
        };
        let (summary, session) = run_manifest(
            self.kiln,
            job.manifest,
            job.arguments,
            self.args,
            session,
            &observer,
            &|note: &str| self.say(started, note),
        );
        let wanted_chroot = matches!(self.args.commands, super::CommandsArg::Chroot);
        if let Some(note) = slow_channel_note(wanted_chroot, &session) {
            self.say(started, note);
        }
        let passed = summary.passed() && kiln::interrupt::requested().is_none();
        let keep = passed && !self.args.test_only;
        let mut outcome = ImageOutcome {
            job: index,
            result: match (&summary.outcome, kiln::interrupt::requested()) {
                (_, Some(stop)) => TargetResult::after(stop),
                (Ok(()), None) => TargetResult::Passed,
                (Err(RunError::Unreachable { .. }), None) => TargetResult::Unreachable,
                (Err(_), None) => TargetResult::Failed,
            },
            summary: Some(summary),
            problem: None,
            commands,
            elapsed: Duration::ZERO,
            keep,
        };
        if keep && self.args.selinux_relabel {
            self.say(started, "relabelling SELinux files");
        }
        match batch.close_image(index, session, keep, self.args.selinux_relabel) {
            Ok(Some(relabelled)) => self.say(started, &relabelled.to_string()),
            Ok(None) => {}
            Err(error) => {
                let result = match error {
                    ImageError::ApplianceGone { .. } => TargetResult::Unreachable,
                    _ => TargetResult::Error,
                };
                self.say(started, &error.to_string());
                outcome.spoil(result, error.to_string());
            }
        }
        outcome.elapsed = began.elapsed();
        self.summarize(&outcome);
        outcome
    }

    /// One image's summary lines, as a one-image pack prints them.
    fn summarize(&self, outcome: &ImageOutcome) {
        let Some(summary) = &outcome.summary else {
            return;
        };
        let lines = progress::summary_text(summary);
        if !self.style.quiet {
            lines.lines().for_each(print_line);
        } else {
            lines.lines().for_each(progress::log_only);
            if let Err(error) = &summary.outcome {
                eprintln!(
                    "kiln: {}: {}",
                    self.jobs[outcome.job].shown(),
                    progress::failure_line(error)
                );
            }
        }
    }

    /// The one shut-down and the commits; a batch that could not shut
    /// down cleanly writes nothing.
    fn commit(&self, batch: ImageBatch, outcomes: &mut [ImageOutcome], started: Instant) {
        let any_kept = outcomes.iter().any(|o| o.keep);
        if any_kept {
            self.say(started, "shutting the appliance down and committing");
            progress::step_start("", "committing the changes");
        }
        let committed = batch.commit();
        progress::steps_clear("");
        match committed {
            Ok(members) => {
                for (outcome, member) in outcomes.iter_mut().zip(members) {
                    self.committed(outcome, member, started);
                }
            }
            Err(error) => {
                let result = match error {
                    ImageError::ApplianceGone { .. } => TargetResult::Unreachable,
                    _ => TargetResult::Error,
                };
                self.say(started, &format!("{error}; no image was written"));
                for outcome in outcomes.iter_mut().filter(|o| o.keep) {
                    outcome.spoil(result, format!("not written: {error}"));
                }
            }
        }
    }

    fn committed(&self, outcome: &mut ImageOutcome, member: BatchMember, started: Instant) {
        match member.outcome {
            Ok(Some(written)) => {
                if let Some(path) = &written.written {
                    self.say(
                        started,
                        &format!(
                            "wrote {} ({:.1} s)",
                            shown_path(path),
                            written.elapsed.as_secs_f64()
                        ),
                    );
                }
            }
            Ok(None) if !self.args.test_only => self.say(
                started,
                &format!("{} left unchanged", self.jobs[outcome.job].shown()),
            ),
            Ok(None) => {}
            Err(error) => {
                self.say(started, &error.to_string());
                outcome.spoil(TargetResult::Error, error.to_string());
            }
        }
    }

    /// The closing lines (one per image, then the count) and the report's
    /// entries; the exit status is 0 only when every image passed.
    fn close(&self, outcomes: Vec<ImageOutcome>, started: Instant, reporter: &mut Reporter) -> i32 {
        let passed = outcomes
            .iter()
            .filter(|o| o.result == TargetResult::Passed)
            .count();
        for outcome in &outcomes {
            let word = outcome.result.shouted();
            let why = outcome
                .problem
                .as_deref()
                .map(|p| format!(": {}", one_line(p)))
                .unwrap_or_default();
            let shown = self.jobs[outcome.job].shown();
            let line = |word: &str| format!("{word:<11} {shown}{why}");
            let paint = if outcome.result == TargetResult::Passed {
                Paint::Good
            } else {
                Paint::Bad
            };
            print_line_logging(&line(&self.style.paint(word, paint)), &line(word));
            self.report(outcome, reporter);
        }
        let all = outcomes.len();
        let closing = |word: &str| {
            format!(
                "{word}: {passed} of {all} images passed in {:.1} s",
                started.elapsed().as_secs_f64()
            )
        };
        let (word, paint) = if passed == all {
            ("PASSED", Paint::Good)
        } else {
            ("FAILED", Paint::Bad)
        };
        print_line_logging(&closing(&self.style.paint(word, paint)), &closing(word));
        i32::from(passed != all)
    }

    fn report(&self, outcome: &ImageOutcome, reporter: &mut Reporter) {
        let job = &self.jobs[outcome.job];
        let name = job.name();
        // Each image lists its own manifest's validators.
        reporter.target_manifest(job.manifest);
        match (&outcome.summary, &outcome.problem) {
            (Some(summary), problem) => {
                reporter.add_run(
                    "image",
                    &name,
                    outcome.result,
                    summary,
                    outcome.elapsed,
                    &outcome.commands,
                );
                // Something after the run (closing, committing) kept it
                // from being written back.
                if let Some(problem) = problem {
                    reporter.not_kept(problem);
                }
            }
            (None, problem) => reporter.add_failed(
                "image",
                &name,
                outcome.result,
                problem.as_deref().unwrap_or("not run"),
                outcome.elapsed,
            ),
        }
    }

    /// After a stop before the commit: every image unchanged; the images
    /// that ran keep their records, the rest are reported as stopped.
    fn stopped(
        &self,
        stop: kiln::interrupt::Stop,
        outcomes: Vec<ImageOutcome>,
        reporter: &mut Reporter,
    ) -> i32 {
        for mut outcome in outcomes {
            outcome.spoil(TargetResult::after(stop), stop.to_string());
            self.report(&outcome, reporter);
        }
        let message = format!(
            "{stop}; every image unchanged ({})",
            self.jobs
                .iter()
                .map(|j| shown_path(&j.image))
                .collect::<Vec<_>>()
                .join(", ")
        );
        stopped_with(stop, &message, self.style, reporter)
    }

    /// After a stop during the commits: the images renamed into place
    /// before it stand, the rest are unchanged, and the message names both.
    fn stopped_in_commit(
        &self,
        stop: kiln::interrupt::Stop,
        outcomes: Vec<ImageOutcome>,
        reporter: &mut Reporter,
    ) -> i32 {
        let (written, unchanged): (Vec<_>, Vec<_>) = outcomes
            .iter()
            .partition(|o| o.result == TargetResult::Passed && !self.args.test_only);
        let names = |list: &[&ImageOutcome]| {
            list.iter()
                .map(|o| shown_path(&self.jobs[o.job].image))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for outcome in &outcomes {
            self.report(outcome, reporter);
        }
        let message = format!(
            "{stop} during the commits; written: {}; unchanged: {}",
            if written.is_empty() {
                "none".into()
            } else {
                names(&written)
            },
            if unchanged.is_empty() {
                "none".into()
            } else {
                names(&unchanged)
            },
        );
        stopped_with(stop, &message, self.style, reporter)
    }
}
