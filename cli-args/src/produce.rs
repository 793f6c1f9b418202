//! Arguments of `outpost produce TOPIC`.

use clap::Args;

/// Arguments of `produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic (created with the broker's defaults if it does not exist and auto-creation is on).
    pub topic: String,
    /// Key of every record (decides the partition unless --partition is given).
    #[arg(long)]
    pub key: Option<String>,
    /// Partition.
    #[arg(long)]
    pub partition: Option<u32>,
    /// Produce this one value instead of reading stdin.
    #[arg(long)]
    pub value: Option<String>,
    /// A header `NAME=VALUE` on every record (repeatable).
    #[arg(long = "header", value_parser = parse_header)]
    pub headers: Vec<(String, Vec<u8>)>,
    /// Print the offsets given to each request.
    #[arg(long)]
    pub verbose: bool,
}

/// `NAME=VALUE` of `--header`.
fn parse_header(s: &str) -> Result<(String, Vec<u8>), String> {
    let (k, v) = s.split_once('=').ok_or("a header is NAME=VALUE")?;
    Ok((k.to_owned(), v.as_bytes().to_vec()))
}
