//! Arguments of `outpost consume TOPIC`.

use clap::{Args, ValueEnum};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The value as text (UTF-8, lossy), with --print-key `key<TAB>value`.
    Text,
    /// One JSON object per line: topic, partition, offset, timestamp, key, value, headers.
    Json,
}

/// Arguments of `consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic.
    pub topic: String,
    /// Start at the log start offset.
    #[arg(long, conflicts_with = "offset")]
    pub from_beginning: bool,
    /// Start at this offset (needs --partition when the topic has several).
    #[arg(long)]
    pub offset: Option<u64>,
    /// Read only this partition.
    #[arg(long)]
    pub partition: Option<u32>,
    /// Consumer group: start from its committed offsets, commit when done.
    #[arg(long)]
    pub group: Option<String>,
    /// Keep waiting for new records.
    #[arg(long)]
    pub follow: bool,
    /// Stop after this many records.
    #[arg(long)]
    pub max: Option<u64>,
    /// Print keys too.
    #[arg(long)]
    pub print_key: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}
