//! The benchmark's figures: one scenario's outcome, and the Markdown tables printed at the end
//! (all figures, then each against its target from issue 2).

/// One scenario's figures.
pub struct Outcome {
    pub name: String,
    pub concurrency: usize,
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    /// Sorted request durations, nanoseconds.
    pub latencies: Vec<u64>,
    pub server_cores: f64,
    pub load_cores: f64,
    pub rss_mib: f64,
    /// Leads written (bulk only).
    pub leads: u64,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    /// Latency at quantile `q` (0..=1), milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank =
            ((q * self.latencies.len() as f64).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[rank - 1] as f64 / 1e6
    }
}

/// The figures as a Markdown table, and each against its target (issue 2).
pub fn print_summary(results: &[Outcome]) {
    println!(
        "| scenario | clients | requests | errors | req/s | p50 ms | p90 ms | p99 ms | max ms | server cores | load-gen cores | RSS MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.2} | {:.2} | {:.0} |",
            r.name,
            r.concurrency,
            r.requests,
            r.errors,
            r.rate(),
            r.ms(0.5),
            r.ms(0.9),
            r.ms(0.99),
            r.ms(1.0),
            r.server_cores,
            r.load_cores,
            r.rss_mib
        );
    }
    println!("\n| target | measured | met |\n|---|---|---|");
    let verdict = |ok: bool| if ok { "yes" } else { "**no**" };
    for r in results {
        let lines: Vec<(String, String, bool)> = match r.name.as_str() {
            "lead(id)" => vec![
                (
                    "lead(id) >= 10,000 req/s".into(),
                    format!("{:.0} req/s", r.rate()),
                    r.rate() >= 10_000.0,
                ),
                (
                    "lead(id) p99 <= 2 ms".into(),
                    format!("{:.3} ms", r.ms(0.99)),
                    r.ms(0.99) <= 2.0,
                ),
            ],
            "leads(status, first 50)" => {
                vec![(
                    "status page p99 <= 5 ms".into(),
                    format!("{:.3} ms", r.ms(0.99)),
                    r.ms(0.99) <= 5.0,
                )]
            }
            "searchLeads(first 20)" => {
                vec![(
                    "search p99 <= 5 ms".into(),
                    format!("{:.3} ms", r.ms(0.99)),
                    r.ms(0.99) <= 5.0,
                )]
            }
            "createLead" | "createLead, 1 client" => vec![(
                format!("createLead p50 <= 1 ms ({} client(s))", r.concurrency),
                format!("{:.3} ms", r.ms(0.5)),
                r.ms(0.5) <= 1.0,
            )],
            "createLeads bulk" => vec![(
                format!("createLeads of {} leads <= 10 s", r.leads),
                format!("{:.2} s", r.seconds),
                r.seconds <= 10.0,
            )],
            _ => vec![],
        };
        for (target, measured, ok) in lines {
            println!("| {target} | {measured} | {} |", verdict(ok));
        }
    }
}
