//! What `simulate` writes: `sends.jsonl`, `summary.json`, `forecast.txt` and `volume.svg`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::Path;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use plotters::prelude::*;

use sequence_core::time::{effective_daily_limit, local_date, local_day_bounds};

use crate::scenario::{MailboxSpec, Scenario};
use crate::simulate::Run;

/// Why the outputs could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// JSON could not be produced.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// The chart could not be drawn.
    #[error("volume.svg: {0}")]
    Chart(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Write every output file of a run into `dir` (created if missing).
///
/// # Errors
/// A file could not be written.
pub fn write_all(dir: &Path, scenario: &Scenario, run: &Run) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;

    let path = dir.join("sends.jsonl");
    let file = std::fs::File::create(&path).map_err(io(&path))?;
    let mut out = BufWriter::new(file);
    for a in &run.attempts {
        serde_json::to_writer(&mut out, a)?;
        out.write_all(b"\n").map_err(io(&path))?;
    }
    out.flush().map_err(io(&path))?;

    let path = dir.join("summary.json");
    let json = serde_json::to_string_pretty(&run.summary)?;
    std::fs::write(&path, json + "\n").map_err(io(&path))?;

    let path = dir.join("forecast.txt");
    std::fs::write(&path, forecast(scenario, run)).map_err(io(&path))?;

    let path = dir.join("volume.svg");
    std::fs::write(&path, volume_svg(scenario, run)?).map_err(io(&path))?;
    Ok(())
}

/// How many sends `gap` seconds apart fit in the open intervals.
fn fits(intervals: &[(DateTime<Utc>, DateTime<Utc>)], gap: i64) -> u64 {
    let mut count = 0u64;
    let mut next = DateTime::<Utc>::MIN_UTC;
    for &(s, e) in intervals {
        let first = s.max(next);
        if first >= e {
            continue;
        }
        if gap <= 0 {
            // Any number fits; the daily limit binds.
            return u64::MAX;
        }
        let n = (e - first).num_seconds().saturating_sub(1) / gap + 1;
        count += u64::try_from(n).unwrap_or(0);
        next = first + Duration::seconds(n * gap);
    }
    count
}

/// Attempts a mailbox could make on its local `date`, inside the scenario's span.
fn capacity_on(m: &MailboxSpec, scenario: &Scenario, date: NaiveDate) -> u64 {
    let (day_start, day_end) = local_day_bounds(m.timezone, date);
    let from = day_start.max(scenario.start);
    let to = day_end.min(scenario.end());
    if from >= to {
        return 0;
    }
    let limit = u64::from(effective_daily_limit(
        m.daily_limit,
        m.warmup.as_ref(),
        date,
    ));
    let open = m.windows.open_intervals(m.timezone, from, to);
    limit.min(fits(&open, i64::from(m.min_gap_seconds)))
}

/// Attempts a mailbox could make over the whole span.
fn capacity(m: &MailboxSpec, scenario: &Scenario) -> u64 {
    let first = local_date(m.timezone, scenario.start);
    let last = local_date(m.timezone, scenario.end() - Duration::seconds(1));
    first
        .iter_days()
        .take_while(|d| *d <= last)
        .map(|d| capacity_on(m, scenario, d))
        .sum()
}

fn percentile_date(ended: &[DateTime<Utc>], total: usize, share: f64) -> Option<DateTime<Utc>> {
    if total == 0 {
        return None;
    }
    let k = ((share * total as f64).ceil() as usize).max(1);
    ended.get(k - 1).copied()
}

/// The text of `forecast.txt`.
#[must_use]
pub fn forecast(scenario: &Scenario, run: &Run) -> String {
    let mut out = String::new();
    let end = scenario.end();
    let _ = writeln!(
        out,
        "Forecast for {:?}: {} days from {} ({} contacts, {} mailboxes, {} sequences)\n",
        scenario.name,
        scenario.days,
        scenario.start,
        scenario.contacts.len(),
        scenario.mailboxes.len(),
        scenario.sequences.len()
    );

    let _ = writeln!(
        out,
        "Sequences: when enrollments finish (completed or exited)"
    );
    let mut last_finish: Option<DateTime<Utc>> = None;
    let mut all_finished = true;
    for s in &scenario.sequences {
        let rows: Vec<_> = run
            .summary
            .enrollments
            .iter()
            .filter(|e| e.sequence == s.id)
            .collect();
        let mut ended: Vec<DateTime<Utc>> = rows.iter().filter_map(|e| e.ended_at).collect();
        ended.sort_unstable();
        let total = rows.len();
        let cell = |share: f64| match percentile_date(&ended, total, share) {
            Some(t) => t.date_naive().to_string(),
            None => "not by the end".to_owned(),
        };
        let finished = if total == 0 {
            100.0
        } else {
            100.0 * ended.len() as f64 / total as f64
        };
        let _ = writeln!(
            out,
            "  {:<24} {:>7} enrolled   50%: {:<14} 90%: {:<14} 100%: {:<14} ({finished:.0}% finished by the end)",
            s.id,
            total,
            cell(0.5),
            cell(0.9),
            cell(1.0)
        );
        if ended.len() < total {
            all_finished = false;
        }
        if let Some(last) = ended.last() {
            last_finish = Some(last_finish.map_or(*last, |l| l.max(*last)));
        }
    }

    let _ = writeln!(out, "\nMailboxes: utilization (attempts / capacity)");
    let mut capacities = Vec::with_capacity(scenario.mailboxes.len());
    for (m, row) in scenario.mailboxes.iter().zip(&run.summary.mailboxes) {
        let cap = capacity(m, scenario);
        capacities.push(cap);
        let share = if cap == 0 {
            "n/a".to_owned()
        } else {
            format!("{:.0}%", 100.0 * row.attempts as f64 / cap as f64)
        };
        let _ = writeln!(
            out,
            "  {:<24} {:>7} / {:<7} {share}",
            m.id, row.attempts, cap
        );
    }

    let _ = writeln!(out, "\nBusiest days (UTC)");
    let mut per_day: BTreeMap<NaiveDate, u64> = BTreeMap::new();
    for a in &run.attempts {
        *per_day.entry(a.at.date_naive()).or_insert(0) += 1;
    }
    let mut busiest: Vec<(NaiveDate, u64)> = per_day.iter().map(|(d, n)| (*d, *n)).collect();
    busiest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for (day, n) in busiest.iter().take(5) {
        let _ = writeln!(out, "  {day}  {n} attempts");
    }
    if busiest.is_empty() {
        let _ = writeln!(out, "  (no attempts)");
    }

    let _ = writeln!(out, "\nA week sooner?");
    let _ = writeln!(
        out,
        "  {}",
        week_sooner(scenario, run, &capacities, all_finished, last_finish, end)
    );
    out
}

/// The one-line answer to "how many more mailboxes of the average limit would finish the
/// whole scenario a week sooner?", from capacity. The work is every attempt the run made
/// plus every step its unfinished enrollments still have to send; the finish is the run's
/// (when everything finished) or the date that work would take at the fleet's pace; a week
/// sooner needs the work spread over seven days fewer, and each extra mailbox brings what
/// an average mailbox of the fleet gave per day.
fn week_sooner(
    scenario: &Scenario,
    run: &Run,
    capacities: &[u64],
    all_finished: bool,
    last_finish: Option<DateTime<Utc>>,
    end: DateTime<Utc>,
) -> String {
    let mailboxes = scenario.mailboxes.len();
    if mailboxes == 0 || run.attempts.is_empty() {
        return "Nothing was sent: there is nothing to finish sooner.".to_owned();
    }
    let avg_limit = scenario
        .mailboxes
        .iter()
        .map(|m| f64::from(m.daily_limit))
        .sum::<f64>()
        / mailboxes as f64;
    let have_per_day = capacities.iter().sum::<u64>() as f64 / f64::from(scenario.days.max(1));
    let per_mailbox_day = have_per_day / mailboxes as f64;
    if per_mailbox_day <= 0.0 {
        return "Unknown: the mailboxes have no capacity inside their windows.".to_owned();
    }
    let steps_of: std::collections::HashMap<&str, usize> = scenario
        .sequences
        .iter()
        .map(|s| (s.id.as_str(), s.steps.len()))
        .collect();
    let remaining: usize = run
        .summary
        .enrollments
        .iter()
        .filter(|e| e.status == "active" || e.status == "paused")
        .map(|e| {
            steps_of
                .get(e.sequence.as_str())
                .copied()
                .unwrap_or(0)
                .saturating_sub(e.steps_sent as usize)
        })
        .sum();
    let work = (run.attempts.len() + remaining) as f64;
    let (span_days, how) = if all_finished {
        let days = (last_finish.unwrap_or(end) - scenario.start).num_seconds() as f64 / 86_400.0;
        (days, format!("it finishes in {days:.1} days"))
    } else {
        let days = (work / have_per_day).max(f64::from(scenario.days));
        (
            days,
            format!(
                "{remaining} steps are still to send at the end; at {have_per_day:.0} attempts a day everything takes about {days:.1} days"
            ),
        )
    };
    let target_days = span_days - 7.0;
    if target_days <= 0.5 {
        return format!("No number of mailboxes: {how}, too short to finish a week sooner.");
    }
    let needed_per_day = work / target_days;
    if all_finished && needed_per_day <= have_per_day * 0.95 {
        return format!(
            "None: capacity is not the bottleneck ({how}; {have_per_day:.0} attempts a day available, {needed_per_day:.0} needed): step delays and windows set the finish date."
        );
    }
    let extra = ((needed_per_day - have_per_day) / per_mailbox_day)
        .ceil()
        .max(1.0) as u64;
    format!(
        "About {extra} more mailbox(es) of the average limit ({avg_limit:.0} a day) would finish a week sooner ({how}; {work:.0} attempts over {target_days:.1} days need {needed_per_day:.0} a day, the fleet gives {have_per_day:.0})."
    )
}

/// The chart: attempts per day stacked by step, and the cumulative share of enrollments
/// finished.
///
/// # Errors
/// The chart could not be drawn.
pub fn volume_svg(scenario: &Scenario, run: &Run) -> Result<String, ReportError> {
    let chart_err = |e: &dyn std::fmt::Display| ReportError::Chart(e.to_string());
    let days = usize::try_from(scenario.days).unwrap_or(1).max(1);
    let steps = scenario
        .sequences
        .iter()
        .map(|s| s.steps.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let day_index = |t: DateTime<Utc>| {
        usize::try_from((t - scenario.start).num_days())
            .unwrap_or(0)
            .min(days - 1)
    };
    let mut counts = vec![vec![0u64; steps]; days];
    for a in &run.attempts {
        let step = (a.step as usize).min(steps - 1);
        counts[day_index(a.at)][step] += 1;
    }
    let total = run.summary.enrollments.len().max(1) as f64;
    let mut finished_per_day = vec![0u64; days];
    for e in &run.summary.enrollments {
        if let Some(t) = e.ended_at {
            if t < scenario.end() {
                finished_per_day[day_index(t)] += 1;
            }
        }
    }
    let mut cumulative = Vec::with_capacity(days);
    let mut acc = 0u64;
    for n in &finished_per_day {
        acc += n;
        cumulative.push(100.0 * acc as f64 / total);
    }
    let peak = counts
        .iter()
        .map(|d| d.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 540)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| chart_err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "{}: attempts per day by step, and enrollments finished",
                    scenario.name
                ),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .right_y_label_area_size(60)
            // Bars centred on whole days; head room above them for the legend.
            .build_cartesian_2d(-0.5f64..days as f64 - 0.5, 0f64..(peak as f64 * 1.4))
            .map_err(|e| chart_err(&e))?
            .set_secondary_coord(-0.5f64..days as f64 - 0.5, 0f64..140f64);
        chart
            .configure_mesh()
            .x_desc("day of the scenario")
            .y_desc("attempts")
            .x_labels(days.min(31))
            .x_label_formatter(&|x| format!("{}", x.round() as i64 + 1))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()
            .map_err(|e| chart_err(&e))?;
        chart
            .configure_secondary_axes()
            .y_desc("% of enrollments finished")
            .y_label_formatter(&|y| {
                if *y <= 100.0 {
                    format!("{y:.0}")
                } else {
                    String::new()
                }
            })
            .draw()
            .map_err(|e| chart_err(&e))?;
        for step in 0..steps {
            let color = Palette99::pick(step).to_rgba();
            let bars = counts.iter().enumerate().map(|(d, per_step)| {
                let below: u64 = per_step[..step].iter().sum();
                let top = below + per_step[step];
                let x = d as f64;
                Rectangle::new(
                    [(x - 0.4, below as f64), (x + 0.4, top as f64)],
                    color.filled(),
                )
            });
            chart
                .draw_series(bars)
                .map_err(|e| chart_err(&e))?
                .label(format!("step {step}"))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        chart
            .draw_secondary_series(LineSeries::new(
                cumulative
                    .iter()
                    .enumerate()
                    .map(|(d, share)| (d as f64 + 0.5, *share)),
                BLACK.stroke_width(2),
            ))
            .map_err(|e| chart_err(&e))?
            .label("enrollments finished (cumulative %)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], BLACK.stroke_width(2)));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| chart_err(&e))?;
        root.present().map_err(|e| chart_err(&e))?;
    }
    Ok(svg)
}
