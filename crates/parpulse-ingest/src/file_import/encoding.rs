//! Text files as Vietnamese offices produce them: UTF-8 with or without a BOM,
//! UTF-16 (Excel's "Unicode text", tab-separated), and the column separator.
//!
//! Legacy Vietnamese encodings (TCVN3/ABC, VNI, Windows-1258) are refused with a
//! message naming the problem: decoding them as anything else would import mojibake.

use std::borrow::Cow;

/// How a text file is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextEncoding {
    /// UTF-8; `bom` when the file starts with EF BB BF (skipped).
    Utf8 { bom: bool },
    /// UTF-16 little endian (with or without FF FE).
    Utf16Le,
    /// UTF-16 big endian (FE FF).
    Utf16Be,
}

/// Why a text file is not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EncodingError(pub String);

const ADVICE: &str = "legacy Vietnamese encodings (TCVN3/ABC, VNI, Windows-1258) are not read: \
    convert the file to Unicode first (Excel: Save As \"CSV UTF-8\" or \"Unicode Text\"; Unikey: \
    Công cụ chuyển mã, destination Unicode)";

/// Looks at the start of a file (a few KiB) and says how it is encoded, or why it is refused.
pub fn sniff(head: &[u8]) -> Result<TextEncoding, EncodingError> {
    if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return check_utf8(&head[3..]).map(|()| TextEncoding::Utf8 { bom: true });
    }
    if head.starts_with(&[0xFF, 0xFE]) {
        return Ok(TextEncoding::Utf16Le);
    }
    if head.starts_with(&[0xFE, 0xFF]) {
        return Ok(TextEncoding::Utf16Be);
    }
    // UTF-16LE without a BOM: ASCII headers put a zero in every odd byte.
    let pairs = head.len() / 2;
    if pairs >= 4 {
        let odd_zeros = head.chunks_exact(2).filter(|p| p[1] == 0 && p[0] != 0).count();
        if odd_zeros * 10 >= pairs * 8 {
            return Ok(TextEncoding::Utf16Le);
        }
    }
    if head.contains(&0) {
        return Err(EncodingError(
            "binary content (NUL bytes) in a text file: not CSV; an Excel workbook must end in .xlsx".into(),
        ));
    }
    check_utf8(head).map(|()| TextEncoding::Utf8 { bom: false })
}

/// Valid UTF-8 (a character cut by the end of the sample aside) that is not legacy
/// Vietnamese text read as Latin-1.
fn check_utf8(head: &[u8]) -> Result<(), EncodingError> {
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).expect("valid prefix"),
        Err(e) => {
            let at = e.valid_up_to();
            let byte = head[at];
            return Err(EncodingError(format!(
                "not UTF-8 or UTF-16: byte 0x{byte:02X} at offset {at} ({}); {ADVICE}",
                if looks_like_legacy_bytes(head) {
                    "the bytes look like TCVN3 or VNI Vietnamese"
                } else {
                    "an 8-bit code page"
                }
            )));
        }
    };
    if let Some(sample) = legacy_mojibake(text) {
        return Err(EncodingError(format!(
            "the text looks like TCVN3 or VNI Vietnamese stored as Latin-1 (e.g. {sample:?}), not Unicode; {ADVICE}"
        )));
    }
    Ok(())
}

/// Many bytes in 0xA1..0xFF that are not UTF-8: typical of TCVN3 (ABC) and VNI.
fn looks_like_legacy_bytes(bytes: &[u8]) -> bool {
    bytes.iter().filter(|b| (0xA1..=0xFF).contains(*b)).count() >= 2
}

/// Latin-1 letters a Vietnamese Unicode text uses (à á â ã è é ê ì í ò ó ô õ ù ú ý).
fn vietnamese_latin1(c: char) -> bool {
    "àáâãèéêìíòóôõùúýÀÁÂÃÈÉÊÌÍÒÓÔÕÙÚÝ".contains(c)
}

/// Letters only Vietnamese Unicode has (ă đ ĩ ũ ơ ư and the U+1EA0..U+1EF9 block).
fn vietnamese_unicode(c: char) -> bool {
    matches!(c, 'ă' | 'Ă' | 'đ' | 'Đ' | 'ĩ' | 'Ĩ' | 'ũ' | 'Ũ' | 'ơ' | 'Ơ' | 'ư' | 'Ư' | '\u{1EA0}'..='\u{1EF9}')
}

/// TCVN3 or VNI text that was decoded as Latin-1/Windows-1252 and saved as UTF-8: many
/// Latin-1 symbols and letters Vietnamese does not use, and no Vietnamese-only letter.
/// Returns a word showing it.
pub fn legacy_mojibake(text: &str) -> Option<String> {
    let foreign =
        |c: char| ('\u{80}'..='\u{FF}').contains(&c) && !vietnamese_latin1(c) || "ƒ†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ".contains(c);
    let (mut suspicious, mut genuine) = (0usize, 0usize);
    let mut sample = None;
    for word in text.split(|c: char| c.is_whitespace() || c == ',' || c == ';' || c == '"') {
        let odd = word.chars().filter(|c| foreign(*c)).count();
        genuine += word.chars().filter(|c| vietnamese_unicode(*c)).count();
        if odd > 0 {
            suspicious += odd;
            if sample.is_none() {
                sample = Some(word.chars().take(24).collect());
            }
        }
    }
    (suspicious >= 3 && suspicious > genuine).then(|| sample.unwrap_or_default())
}

/// Decodes a whole file held in memory.
pub fn decode(bytes: &[u8], encoding: TextEncoding) -> Result<Cow<'_, str>, EncodingError> {
    match encoding {
        TextEncoding::Utf8 { bom } => {
            let body = if bom { &bytes[3..] } else { bytes };
            std::str::from_utf8(body)
                .map(Cow::Borrowed)
                .map_err(|e| EncodingError(format!("invalid UTF-8 at byte {}; {ADVICE}", e.valid_up_to())))
        }
        TextEncoding::Utf16Le | TextEncoding::Utf16Be => {
            let codec = if encoding == TextEncoding::Utf16Le { encoding_rs::UTF_16LE } else { encoding_rs::UTF_16BE };
            let (text, had_errors) = codec.decode_with_bom_removal(bytes);
            if had_errors {
                return Err(EncodingError("invalid UTF-16 (an odd length or a broken surrogate pair)".into()));
            }
            if let Some(sample) = legacy_mojibake(&text) {
                return Err(EncodingError(format!(
                    "the text looks like TCVN3 or VNI Vietnamese stored as Latin-1 (e.g. {sample:?}); {ADVICE}"
                )));
            }
            Ok(text)
        }
    }
}

/// The column separator (unless `--delimiter` says): of `,`, `;` and tab, the one that
/// occurs most often (outside quotes) on one of the first 30 lines, so that title rows
/// above the header do not mislead it.
pub fn detect_delimiter(head: &str) -> u8 {
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    for line in head.lines().take(30) {
        let mut quoted = false;
        let mut line_counts = [0usize; 3];
        for b in line.bytes() {
            if b == b'"' {
                quoted = !quoted;
            } else if !quoted {
                if let Some(i) = counts.iter().position(|(d, _)| *d == b) {
                    line_counts[i] += 1;
                }
            }
        }
        for (i, n) in line_counts.into_iter().enumerate() {
            counts[i].1 = counts[i].1.max(n);
        }
    }
    // Ties keep the earlier (comma first): max_by_key returns the last maximum, so reverse.
    counts.iter().rev().max_by_key(|(_, n)| *n).map(|(d, _)| *d).unwrap_or(b',')
}

/// `--delimiter` values: `,`, `;`, `tab` (or a literal tab), `|`.
pub fn parse_delimiter(text: &str) -> Result<u8, String> {
    match text {
        "," | "comma" => Ok(b','),
        ";" | "semicolon" => Ok(b';'),
        "\t" | "tab" | "\\t" => Ok(b'\t'),
        "|" | "pipe" => Ok(b'|'),
        other => Err(format!("delimiter {other:?}: use , ; tab or |")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_with_and_without_bom_and_utf16_are_recognised() {
        assert_eq!(sniff("Mã hồ sơ,Trạng thái\n".as_bytes()), Ok(TextEncoding::Utf8 { bom: false }));
        assert_eq!(sniff(b"\xEF\xBB\xBFa,b\n"), Ok(TextEncoding::Utf8 { bom: true }));
        let utf16: Vec<u8> = "\u{FEFF}Mã hồ sơ\tTrạng thái\r\n".encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        assert_eq!(sniff(&utf16), Ok(TextEncoding::Utf16Le));
        assert_eq!(decode(&utf16, TextEncoding::Utf16Le).unwrap(), "Mã hồ sơ\tTrạng thái\r\n");
        let no_bom: Vec<u8> = "MaHoSo\tMaTTHC\r\n".encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        assert_eq!(sniff(&no_bom), Ok(TextEncoding::Utf16Le));
    }

    #[test]
    fn a_character_cut_by_the_sample_end_is_not_an_error() {
        let text = "Mã hồ sơ".as_bytes();
        assert!(sniff(&text[..text.len() - 1]).is_ok());
    }

    #[test]
    fn tcvn3_and_vni_bytes_are_refused_naming_the_encoding() {
        // "Mã hồ sơ" in TCVN3 (ABC): M, 0xE3 (ã), space, h, 0xE5 (ồ), space, s, 0xAC (ơ).
        let tcvn3 = b"M\xE3 h\xE5 s\xAC,Tr\xB9ng th\xE1i\n";
        let error = sniff(tcvn3).unwrap_err().0;
        assert!(error.contains("TCVN3") && error.contains("not UTF-8"), "{error}");
        // The same bytes read as Latin-1 and saved as UTF-8 (mojibake): refused too.
        let mojibake: String = tcvn3.iter().map(|b| char::from(*b)).collect();
        let error = sniff(mojibake.as_bytes()).unwrap_err().0;
        assert!(error.contains("TCVN3 or VNI") && error.contains("Latin-1"), "{error}");
        // VNI stores tone marks as separate Latin-1 letters: "Hồ sơ đã tiếp nhận, kết quả được trả".
        let vni = "Hoà sô ñaõ tieáp nhaän, keát quaû ñöôïc traû";
        assert!(legacy_mojibake(vni).is_some());
        // Genuine Vietnamese is never taken for mojibake.
        assert_eq!(legacy_mojibake("Mã hồ sơ, Ngày tiếp nhận, Đã trả kết quả, Trực tuyến"), None);
        assert_eq!(legacy_mojibake("Bà Nguyễn Thị Hoà, Tô Văn Tú"), None);
    }

    #[test]
    fn delimiters_are_detected_outside_quotes() {
        assert_eq!(detect_delimiter("a,b,c"), b',');
        assert_eq!(detect_delimiter("\"x,y\";b;c"), b';');
        assert_eq!(detect_delimiter("a\tb\t\"c,d,e\""), b'\t');
        assert_eq!(detect_delimiter("single"), b',');
        assert_eq!(parse_delimiter("tab"), Ok(b'\t'));
        assert!(parse_delimiter("x").is_err());
    }
}
