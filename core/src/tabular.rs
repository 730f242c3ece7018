//! Tabular files for imports and exports: streamed CSV reading in UTF-8
//! (with or without BOM) or GBK, and CSV / JSON Lines writing.
//!
//! Reading never holds more than one record and a small buffer in memory, so
//! a file of any length imports in bounded memory.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use encoding_rs_io::DecodeReaderBytesBuilder;

use crate::error::{Error, Result};

/// How the bytes of an input file are to be read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// UTF-8 when the start of the file is valid UTF-8 (or has a BOM),
    /// otherwise GBK.
    #[default]
    Auto,
    /// UTF-8; a leading BOM is skipped.
    Utf8,
    /// GBK / GB18030, as written by common Chinese spreadsheet tools.
    Gbk,
}

impl FromStr for Encoding {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "auto" => Ok(Encoding::Auto),
            "utf-8" | "utf8" => Ok(Encoding::Utf8),
            "gbk" | "gb18030" | "gb2312" | "cp936" => Ok(Encoding::Gbk),
            other => Err(Error::invalid(
                "encoding",
                format!("unknown encoding {other:?} (use auto, utf-8 or gbk)"),
            )),
        }
    }
}

/// How many bytes to look at when guessing the encoding.
const SNIFF_BYTES: usize = 64 * 1024;

/// Guesses the encoding of a file from its first bytes.
pub fn detect(path: &Path) -> Result<Encoding> {
    let mut f = File::open(path).map_err(|e| io_error(path, e))?;
    let mut buf = vec![0u8; SNIFF_BYTES];
    let mut n = 0;
    while n < buf.len() {
        let m = f.read(&mut buf[n..]).map_err(|e| io_error(path, e))?;
        if m == 0 {
            break;
        }
        n += m;
    }
    Ok(sniff(&buf[..n]))
}

fn sniff(bytes: &[u8]) -> Encoding {
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Encoding::Utf8;
    }
    match std::str::from_utf8(bytes) {
        Ok(_) => Encoding::Utf8,
        // Cut off in the middle of a character at the end of the sample.
        Err(e) if e.error_len().is_none() => Encoding::Utf8,
        Err(_) => Encoding::Gbk,
    }
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::invalid("file", format!("{}: {e}", path.display()))
}

/// Counts the bytes read through it, for progress reporting.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// One data row of a CSV file.
#[derive(Debug)]
pub struct Row {
    /// Line number in the file (the header is line 1).
    pub line: u64,
    /// Values by column position (missing trailing cells are empty).
    pub values: Vec<String>,
}

/// A streamed CSV file with a header row.
pub struct CsvSource {
    reader: csv::Reader<Box<dyn Read + Send>>,
    /// Column names as written in the header (trimmed).
    pub headers: Vec<String>,
    /// The encoding the file is read with.
    pub encoding: Encoding,
    /// File size in bytes.
    pub size: u64,
    bytes_read: Arc<AtomicU64>,
    record: csv::StringRecord,
}

impl CsvSource {
    /// Opens `path`; `Auto` guesses the encoding from the first 64 KiB.
    pub fn open(path: &Path, encoding: Encoding) -> Result<CsvSource> {
        let encoding = match encoding {
            Encoding::Auto => detect(path)?,
            e => e,
        };
        let file = File::open(path).map_err(|e| io_error(path, e))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let bytes_read = Arc::new(AtomicU64::new(0));
        let counted = Counting {
            inner: BufReader::with_capacity(256 * 1024, file),
            read: bytes_read.clone(),
        };
        let decoder = DecodeReaderBytesBuilder::new()
            .encoding(Some(match encoding {
                Encoding::Gbk => encoding_rs::GBK,
                _ => encoding_rs::UTF_8,
            }))
            .build(counted);
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .buffer_capacity(256 * 1024)
            .from_reader(Box::new(decoder) as Box<dyn Read + Send>);
        let headers = reader
            .headers()
            .map_err(|e| Error::invalid("file", format!("cannot read the header row: {e}")))?
            .iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_owned())
            .collect::<Vec<_>>();
        if headers.iter().all(String::is_empty) {
            return Err(Error::invalid("file", "the file has no header row"));
        }
        Ok(CsvSource {
            reader,
            headers,
            encoding,
            size,
            bytes_read,
            record: csv::StringRecord::new(),
        })
    }

    /// Bytes of the file read so far.
    pub fn position(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    /// The next row; `Err` for a row the CSV parser cannot read (the caller
    /// reports it and may go on), `None` at the end.
    pub fn next_row(&mut self) -> Option<std::result::Result<Row, (u64, String)>> {
        match self.reader.read_record(&mut self.record) {
            Ok(false) => None,
            Ok(true) => {
                let line = self.record.position().map_or(0, |p| p.line());
                if self.record.len() > self.headers.len() {
                    return Some(Err((
                        line,
                        format!(
                            "the row has {} cells but the header has {}",
                            self.record.len(),
                            self.headers.len()
                        ),
                    )));
                }
                let mut values: Vec<String> = self.record.iter().map(str::to_owned).collect();
                values.resize(self.headers.len(), String::new());
                Some(Ok(Row { line, values }))
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                Some(Err((line, format!("unreadable row: {e}"))))
            }
        }
    }
}

/// Output format of an export.
#[derive(
    async_graphql::Enum,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum ExportFormat {
    /// Comma-separated values with a header row (UTF-8).
    #[default]
    Csv,
    /// One JSON object per line.
    JsonLines,
}

impl ExportFormat {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::JsonLines => "jsonl",
        }
    }

    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::JsonLines => "application/jsonl; charset=utf-8",
        }
    }
}

/// Writes rows of named columns as CSV or JSON Lines.
pub struct TableWriter<W: Write> {
    format: ExportFormat,
    columns: Vec<String>,
    csv: Option<csv::Writer<W>>,
    json: Option<W>,
}

impl<W: Write> TableWriter<W> {
    /// Starts a file with these columns (CSV writes the header now).
    pub fn new(out: W, format: ExportFormat, columns: Vec<String>) -> Result<Self> {
        let mut w = TableWriter {
            format,
            columns,
            csv: None,
            json: None,
        };
        match format {
            ExportFormat::Csv => {
                let mut c = csv::Writer::from_writer(out);
                c.write_record(&w.columns).map_err(csv_error)?;
                w.csv = Some(c);
            }
            ExportFormat::JsonLines => w.json = Some(out),
        }
        Ok(w)
    }

    /// Writes one row; `values` follows the column order.
    pub fn write(&mut self, values: &[serde_json::Value]) -> Result<()> {
        match self.format {
            ExportFormat::Csv => {
                let cells = values.iter().map(csv_cell);
                self.csv
                    .as_mut()
                    .expect("csv writer")
                    .write_record(cells)
                    .map_err(csv_error)
            }
            ExportFormat::JsonLines => {
                let obj: serde_json::Map<String, serde_json::Value> = self
                    .columns
                    .iter()
                    .cloned()
                    .zip(values.iter().cloned())
                    .collect();
                let out = self.json.as_mut().expect("json writer");
                serde_json::to_writer(&mut *out, &obj)
                    .map_err(|e| Error::Internal(format!("export write: {e}")))?;
                out.write_all(b"\n")
                    .map_err(|e| Error::Internal(format!("export write: {e}")))
            }
        }
    }

    /// Flushes and returns the output.
    pub fn finish(self) -> Result<W> {
        match self.format {
            ExportFormat::Csv => self
                .csv
                .expect("csv writer")
                .into_inner()
                .map_err(|e| Error::Internal(format!("export write: {e}"))),
            ExportFormat::JsonLines => {
                let mut out = self.json.expect("json writer");
                out.flush()
                    .map_err(|e| Error::Internal(format!("export write: {e}")))?;
                Ok(out)
            }
        }
    }
}

fn csv_error(e: csv::Error) -> Error {
    Error::Internal(format!("csv write: {e}"))
}

/// A JSON value as a CSV cell. Text that a spreadsheet would run as a
/// formula (`=`, `+`, `-`, `@` first) gets a leading apostrophe.
pub fn csv_cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => {
            let risky = s.starts_with(['=', '+', '-', '@', '\t', '\r']);
            let numeric = s.parse::<f64>().is_ok()
                || (s.starts_with('+') && s[1..].chars().all(|c| c.is_ascii_digit() || c == ' '));
            if risky && !numeric {
                format!("'{s}")
            } else {
                s.clone()
            }
        }
        serde_json::Value::Array(items) => {
            items.iter().map(csv_cell).collect::<Vec<_>>().join("; ")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_utf8_bom_and_gbk() {
        assert_eq!(sniff(b"\xEF\xBB\xBFname\n"), Encoding::Utf8);
        assert_eq!(sniff("名字,邮箱\n".as_bytes()), Encoding::Utf8);
        let (gbk, _, _) = encoding_rs::GBK.encode("名字,邮箱\n张三,a@b.cn\n");
        assert_eq!(sniff(&gbk), Encoding::Gbk);
        // A multi-byte character cut at the end of the sample is still UTF-8.
        let s = "ab名".as_bytes();
        assert_eq!(sniff(&s[..s.len() - 1]), Encoding::Utf8);
    }

    #[test]
    fn formulas_are_defused_but_phone_numbers_are_not() {
        assert_eq!(csv_cell(&"=1+2".into()), "'=1+2");
        assert_eq!(csv_cell(&"@SUM(A1)".into()), "'@SUM(A1)");
        assert_eq!(csv_cell(&"+4930123456".into()), "+4930123456");
        assert_eq!(csv_cell(&"-12.5".into()), "-12.5");
        assert_eq!(csv_cell(&"plain".into()), "plain");
    }
}
