//! The table `logjet-bench` prints.

/// One line of the table: what, the figure, the target it is held to.
pub struct Row {
    pub name: String,
    pub value: String,
    pub target: String,
}

pub fn row(name: &str, value: String, target: &str) -> Row {
    Row {
        name: name.into(),
        value,
        target: target.into(),
    }
}

/// Prints the table under a header naming the machine.
pub fn print_table(rows: &[Row], processors: usize) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    println!();
    println!(
        "logjet bench — {} — {} × {cpu}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "processors: {processors}, all services, NATS, Redis and the load generator on this machine"
    );
    println!();
    println!("| {:<52} | {:>12} | {:>10} |", "measure", "value", "target");
    println!("|{:-<54}|{:->14}|{:->12}|", "", "", "");
    for r in rows {
        println!("| {:<52} | {:>12} | {:>10} |", r.name, r.value, r.target);
    }
}
