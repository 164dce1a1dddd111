//! The words a component's SQL may be written in: a strict subset of the
//! SQL both databases read the same way, checked before sqlparser reads
//! the text at all.
//!
//! Why: the check is only as good as the agreement between sqlparser and
//! the database on where each token ends. Where they disagree, a text the
//! walk reads as a string is code to the database: SQLite reads `$1::t(')`
//! as one parameter (Tcl-style, up to the next `)`), PostgreSQL reads
//! `$€$` as a dollar quote, continues `E'...'` across a newline, and honours
//! backslashes in `E'...'`. So only the plainest form of each token passes:
//! ASCII names, `"quoted names"`, `'strings'` (no backslash, no prefix, not
//! two in a row), unsigned numbers, `$1`-style parameters, a few operators
//! and white space. Anything else is refused, naming it.

/// Whether `sql` is written only in the words both databases read alike
/// (see the module's doc); the first word that is not, described.
/// `brackets`: `[` and `]` pass, for a PostgreSQL text's array types
/// (SQLite reads `[...]` as a quoted name).
pub(super) fn plain(sql: &str, brackets: bool) -> Result<(), String> {
    let bytes = sql.as_bytes();
    let mut at = 0;
    // The token before this one, and whether white space came between.
    let mut last = Token::Start;
    let mut spaced = true;
    while let Some(&c) = bytes.get(at) {
        let glued_to = |kinds: &[Token]| !spaced && kinds.contains(&last);
        let token = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                at += 1;
                spaced = true;
                continue;
            }
            b'\'' => {
                if last == Token::String {
                    return Err("two strings in a row (PostgreSQL joins them)".into());
                }
                if glued_to(&[Token::Word, Token::Number, Token::Parameter]) {
                    return Err("a string glued to a name (`E'...'`, `X'...'`, ...)".into());
                }
                at = quoted(bytes, at, b'\'')?;
                Token::String
            }
            b'"' => {
                if glued_to(&[Token::Word, Token::Number, Token::Parameter, Token::String]) {
                    return Err("a quoted name glued to another word".into());
                }
                at = quoted(bytes, at, b'"')?;
                Token::Word
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                if glued_to(&[Token::Word, Token::Number, Token::Parameter, Token::String]) {
                    return Err("a name glued to another word".into());
                }
                at += bytes[at..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                    .count();
                Token::Word
            }
            b'0'..=b'9' => {
                if glued_to(&[Token::Word, Token::Number, Token::Parameter, Token::String]) {
                    return Err("a number glued to another word".into());
                }
                at = number(bytes, at);
                Token::Number
            }
            b'$' => {
                let digits = bytes[at + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if digits == 0 {
                    return Err("`$` other than in a parameter `$1`, `$2`, ... (no dollar \
                                quoting)"
                        .into());
                }
                if glued_to(&[Token::Word, Token::Number, Token::Parameter, Token::String]) {
                    return Err("a parameter glued to another word".into());
                }
                at += 1 + digits;
                // SQLite reads on after `$1` through name characters, `::`
                // and a `(...)`: nothing of that may follow.
                if matches!(bytes.get(at), Some(b) if b.is_ascii_alphanumeric()
                    || matches!(b, b'_' | b'$' | b':' | b'(' | b'\'' | b'"'))
                {
                    return Err("a parameter followed at once by a name, `::` or `(` \
                                (write `CAST($1 AS ...)`)"
                        .into());
                }
                Token::Parameter
            }
            b'[' | b']' if brackets => {
                at += 1;
                Token::Operator
            }
            b':' if bytes.get(at + 1) == Some(&b':') => {
                at += 2;
                Token::Operator
            }
            b'(' | b')' | b',' | b';' | b'.' | b'+' | b'-' | b'*' | b'/' | b'%' | b'=' | b'<'
            | b'>' | b'!' | b'|' => {
                at += 1;
                Token::Operator
            }
            other => return Err(refused_character(sql, at, other)),
        };
        last = token;
        spaced = false;
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Token {
    Start,
    Word,
    String,
    Number,
    Parameter,
    Operator,
}

/// The end of the quoted token at `start` (`'...'` or `"..."`, the quote
/// doubled inside it), refusing a backslash or a NUL inside a string.
fn quoted(bytes: &[u8], start: usize, quote: u8) -> Result<usize, String> {
    let mut at = start + 1;
    loop {
        match bytes.get(at) {
            None => return Err("a quote that is never closed".into()),
            Some(&b) if b == quote => {
                if bytes.get(at + 1) == Some(&quote) {
                    at += 2;
                    continue;
                }
                return Ok(at + 1);
            }
            Some(b'\\') if quote == b'\'' => {
                return Err("a backslash in a string (pass such values as parameters)".into());
            }
            Some(0) => return Err("a NUL character".into()),
            Some(_) => at += 1,
        }
    }
}

/// The end of the unsigned number at `start`: digits, a fraction, an
/// exponent.
fn number(bytes: &[u8], start: usize) -> usize {
    let digits = |from: usize| {
        bytes[from.min(bytes.len())..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let mut at = start + digits(start);
    if bytes.get(at) == Some(&b'.') {
        at += 1 + digits(at + 1);
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(bytes.get(at + 1), Some(b'+' | b'-')));
        let exponent = digits(at + 1 + sign);
        if exponent > 0 {
            at += 1 + sign + exponent;
        }
    }
    at
}

fn refused_character(sql: &str, at: usize, byte: u8) -> String {
    match sql[at..].chars().next() {
        Some(c) if !c.is_control() => {
            format!("the character {c:?} outside a string or a quoted name")
        }
        _ => format!("the control character {byte:#04x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::plain;

    #[test]
    fn plain_sql_passes() {
        for sql in [
            "SELECT id, \"text\" FROM plugin_notes_items WHERE id = $1 AND v <> 'it''s' ORDER BY 2",
            "INSERT INTO plugin_notes_items (id, v) VALUES ($1, $2) RETURNING id",
            "UPDATE plugin_notes_items SET n = n + 1.5e3, w = 'é' || v WHERE id >= 10",
            "SELECT CAST($1 AS TEXT) AS x, v::TEXT, COUNT(*) FROM plugin_notes_items\n\tGROUP BY v",
            "CREATE TABLE plugin_notes_a (id INTEGER PRIMARY KEY, t TEXT NOT NULL DEFAULT '');\n\
             CREATE INDEX plugin_notes_a_t ON plugin_notes_a (t)",
            "SELECT 1",
            "SELECT .5, 3., x.y FROM plugin_notes_items AS x WHERE a != b",
        ] {
            assert_eq!(plain(sql, false), Ok(()), "{sql}");
        }
    }

    #[test]
    fn what_the_databases_read_apart_is_refused() {
        for sql in [
            "SELECT $1::inet(') AS a, (SELECT 1 FROM users), $2::inet(')",
            "SELECT :a::inet(') FROM t",
            "SELECT @a(') FROM t",
            "SELECT #a FROM t",
            "SELECT $€$ x $€$",
            "SELECT $$ x $$",
            "SELECT $a$ x $a$",
            "SELECT E'\\'' FROM t",
            "SELECT e'x'",
            "SELECT U&'d\\0061t'",
            "SELECT U&\"d\" FROM t",
            "SELECT X'00'",
            "SELECT 'a'\n'b'",
            "SELECT 'a' 'b'",
            "SELECT 'a\\'",
            "SELECT 0x1F",
            "SELECT 1abc",
            "SELECT $1abc",
            "SELECT $1$",
            "SELECT a$1 FROM t",
            "SELECT `a` FROM t",
            "SELECT [a] FROM t",
            "SELECT ? FROM t",
            "SELECT a ~ b FROM t",
            "SELECT a & b FROM t",
            "SELECT é FROM t",
            "SELECT 'a",
            "SELECT \"a",
            "SELECT 'a\0'",
            "SELECT a\u{0c}FROM t",
            "SELECT {a}",
            "SELECT a:b",
        ] {
            assert!(plain(sql, false).is_err(), "{sql:?} passed");
        }
        assert_eq!(
            plain("ALTER TABLE plugin_notes_t ADD COLUMN u TEXT[]", true),
            Ok(())
        );
    }
}
