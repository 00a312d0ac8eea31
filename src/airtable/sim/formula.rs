//! A small `filterByFormula` parser and evaluator: enough of Airtable's formula language for what
//! leadcache (and simple hand-written filters) send:
//! `IS_AFTER({f}, DATETIME_PARSE('…'))`, `IS_BEFORE`, `{f} = '…'` (and `!= < > <= >=`), `&`,
//! `AND`, `OR`, `NOT`, `IF`, `BLANK()`, `TRUE()`, `FALSE()`, `RECORD_ID()`, `LOWER`, `UPPER`,
//! `LEN`, `TRIM`. Anything else is rejected like Airtable does, with 422 `INVALID_FILTER_BY_FORMULA`.

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Str(String),
    Num(f64),
    Field(String),
    Call(String, Vec<Expr>),
    Bin(Op, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    Concat,
}

/// A value during evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Blank,
    Str(String),
    Num(f64),
    Bool(bool),
    Date(DateTime<Utc>),
    Arr(Vec<Val>),
}

/// Why a formula was refused (the text after "The formula for filtering records is invalid: ").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormulaError {
    Invalid,
    UnknownFields(Vec<String>),
}

impl FormulaError {
    pub fn message(&self) -> String {
        let tail = match self {
            FormulaError::Invalid => "Invalid formula. Please check your formula text.".to_string(),
            FormulaError::UnknownFields(names) => {
                format!("Unknown field names: {}", names.join(", "))
            }
        };
        format!("The formula for filtering records is invalid: {tail}")
    }
}

/// The values a formula reads from one record.
pub trait RecordView {
    fn field(&self, name: &str) -> Val;
    fn record_id(&self) -> String;
}

const FUNCTIONS: &[(&str, usize, usize)] = &[
    ("AND", 1, usize::MAX),
    ("OR", 1, usize::MAX),
    ("NOT", 1, 1),
    ("IF", 2, 3),
    ("IS_AFTER", 2, 2),
    ("IS_BEFORE", 2, 2),
    ("DATETIME_PARSE", 1, 3),
    ("BLANK", 0, 0),
    ("TRUE", 0, 0),
    ("FALSE", 0, 0),
    ("RECORD_ID", 0, 0),
    ("LOWER", 1, 1),
    ("UPPER", 1, 1),
    ("LEN", 1, 1),
    ("TRIM", 1, 1),
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    Num(f64),
    Field(String),
    Ident(String),
    Op(Op),
    LParen,
    RParen,
    Comma,
}

fn lex(s: &str) -> Result<Vec<Tok>, FormulaError> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            '&' => {
                out.push(Tok::Op(Op::Concat));
                i += 1
            }
            '=' => {
                out.push(Tok::Op(Op::Eq));
                i += 1
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Op(Op::Ne));
                i += 2
            }
            '<' | '>' => {
                let eq = chars.get(i + 1) == Some(&'=');
                let ne = c == '<' && chars.get(i + 1) == Some(&'>');
                out.push(Tok::Op(match (c, eq, ne) {
                    (_, _, true) => Op::Ne,
                    ('<', true, _) => Op::Le,
                    ('<', false, _) => Op::Lt,
                    (_, true, _) => Op::Ge,
                    _ => Op::Gt,
                }));
                i += if eq || ne { 2 } else { 1 };
            }
            '\'' | '"' => {
                let quote = c;
                let mut v = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(FormulaError::Invalid),
                        Some('\\') => {
                            let next = chars.get(i + 1).ok_or(FormulaError::Invalid)?;
                            v.push(match next {
                                'n' => '\n',
                                't' => '\t',
                                other => *other,
                            });
                            i += 2;
                        }
                        Some(ch) if *ch == quote => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            v.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(v));
            }
            '{' => {
                let mut v = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(FormulaError::Invalid),
                        Some('\\') if chars.get(i + 1) == Some(&'}') => {
                            v.push('}');
                            i += 2;
                        }
                        Some('}') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            v.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Field(v));
            }
            c if c.is_ascii_digit() || c == '.' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                out.push(Tok::Num(text.parse().map_err(|_| FormulaError::Invalid)?));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                out.push(Tok::Ident(
                    chars[start..i]
                        .iter()
                        .collect::<String>()
                        .to_ascii_uppercase(),
                ));
            }
            _ => return Err(FormulaError::Invalid),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expr(&mut self) -> Result<Expr, FormulaError> {
        let left = self.concat()?;
        if let Some(Tok::Op(op)) = self.peek().cloned()
            && op != Op::Concat
        {
            self.pos += 1;
            let right = self.concat()?;
            return Ok(Expr::Bin(op, Box::new(left), Box::new(right)));
        }
        Ok(left)
    }

    fn concat(&mut self) -> Result<Expr, FormulaError> {
        let mut left = self.primary()?;
        while self.peek() == Some(&Tok::Op(Op::Concat)) {
            self.pos += 1;
            let right = self.primary()?;
            left = Expr::Bin(Op::Concat, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn primary(&mut self) -> Result<Expr, FormulaError> {
        match self.next().ok_or(FormulaError::Invalid)? {
            Tok::Str(s) => Ok(Expr::Str(s)),
            Tok::Num(n) => Ok(Expr::Num(n)),
            Tok::Field(f) => Ok(Expr::Field(f)),
            Tok::LParen => {
                let e = self.expr()?;
                match self.next() {
                    Some(Tok::RParen) => Ok(e),
                    _ => Err(FormulaError::Invalid),
                }
            }
            Tok::Ident(name) => {
                let (_, min, max) = FUNCTIONS
                    .iter()
                    .find(|f| f.0 == name)
                    .copied()
                    .ok_or(FormulaError::Invalid)?;
                if self.peek() != Some(&Tok::LParen) {
                    // TRUE and FALSE may be written without parentheses.
                    return match name.as_str() {
                        "TRUE" | "FALSE" => Ok(Expr::Call(name, vec![])),
                        _ => Err(FormulaError::Invalid),
                    };
                }
                self.pos += 1;
                let mut args = Vec::new();
                if self.peek() == Some(&Tok::RParen) {
                    self.pos += 1;
                } else {
                    loop {
                        args.push(self.expr()?);
                        match self.next() {
                            Some(Tok::Comma) => continue,
                            Some(Tok::RParen) => break,
                            _ => return Err(FormulaError::Invalid),
                        }
                    }
                }
                if args.len() < min || args.len() > max {
                    return Err(FormulaError::Invalid);
                }
                Ok(Expr::Call(name, args))
            }
            _ => Err(FormulaError::Invalid),
        }
    }
}

fn collect_fields(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::Field(f) => out.push(f.clone()),
        Expr::Call(_, args) => args.iter().for_each(|a| collect_fields(a, out)),
        Expr::Bin(_, a, b) => {
            collect_fields(a, out);
            collect_fields(b, out);
        }
        _ => {}
    }
}

/// Parses `text`; `known` tells whether a field name (or id) exists.
pub fn parse(text: &str, known: impl Fn(&str) -> bool) -> Result<Expr, FormulaError> {
    let toks = lex(text)?;
    if toks.is_empty() {
        return Err(FormulaError::Invalid);
    }
    let mut p = Parser { toks, pos: 0 };
    let e = p.expr()?;
    if p.pos != p.toks.len() {
        return Err(FormulaError::Invalid);
    }
    let mut names = Vec::new();
    collect_fields(&e, &mut names);
    let mut unknown: Vec<String> = names
        .into_iter()
        .filter(|n| !known(n))
        .map(|n| n.to_lowercase())
        .collect();
    unknown.dedup();
    if !unknown.is_empty() {
        return Err(FormulaError::UnknownFields(unknown));
    }
    Ok(e)
}

impl Val {
    pub fn truthy(&self) -> bool {
        match self {
            Val::Blank => false,
            Val::Str(s) => !s.is_empty(),
            Val::Num(n) => *n != 0.0 && !n.is_nan(),
            Val::Bool(b) => *b,
            Val::Date(_) => true,
            Val::Arr(a) => !a.is_empty(),
        }
    }

    fn text(&self) -> String {
        match self {
            Val::Blank => String::new(),
            Val::Str(s) => s.clone(),
            Val::Num(n) => {
                if n.fract() == 0.0 && n.abs() < 1e15 {
                    format!("{}", *n as i64)
                } else {
                    n.to_string()
                }
            }
            Val::Bool(b) => if *b { "1" } else { "0" }.to_string(),
            Val::Date(d) => d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            Val::Arr(a) => a.iter().map(Val::text).collect::<Vec<_>>().join(", "),
        }
    }

    fn date(&self) -> Option<DateTime<Utc>> {
        match self {
            Val::Date(d) => Some(*d),
            Val::Str(s) => crate::time::parse(s).map(|t| t.and_utc()),
            Val::Arr(a) if a.len() == 1 => a[0].date(),
            _ => None,
        }
    }

    fn num(&self) -> Option<f64> {
        match self {
            Val::Num(n) => Some(*n),
            Val::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Val::Blank => Some(0.0),
            Val::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

fn compare(op: Op, a: &Val, b: &Val) -> Val {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (a, b) {
        (Val::Blank, x) | (x, Val::Blank) if op == Op::Eq || op == Op::Ne => {
            let blank = match x {
                Val::Blank => true,
                Val::Str(s) => s.is_empty(),
                Val::Num(n) => *n == 0.0,
                Val::Bool(b) => !*b,
                Val::Arr(v) => v.is_empty(),
                Val::Date(_) => false,
            };
            Some(if blank {
                Ordering::Equal
            } else {
                Ordering::Less
            })
        }
        (Val::Date(_), _) | (_, Val::Date(_)) => match (a.date(), b.date()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => None,
        },
        (Val::Num(_) | Val::Bool(_), _) | (_, Val::Num(_) | Val::Bool(_)) => {
            match (a.num(), b.num()) {
                (Some(x), Some(y)) => x.partial_cmp(&y),
                _ => Some(a.text().cmp(&b.text())),
            }
        }
        _ => Some(a.text().cmp(&b.text())),
    };
    let Some(ord) = ord else { return Val::Blank };
    Val::Bool(match op {
        Op::Eq => ord == Ordering::Equal,
        Op::Ne => ord != Ordering::Equal,
        Op::Lt => ord == Ordering::Less,
        Op::Gt => ord == Ordering::Greater,
        Op::Le => ord != Ordering::Greater,
        Op::Ge => ord != Ordering::Less,
        Op::Concat => false,
    })
}

/// Evaluates `e` on one record.
pub fn eval(e: &Expr, rec: &dyn RecordView) -> Val {
    match e {
        Expr::Str(s) => Val::Str(s.clone()),
        Expr::Num(n) => Val::Num(*n),
        Expr::Field(f) => rec.field(f),
        Expr::Bin(Op::Concat, a, b) => Val::Str(eval(a, rec).text() + &eval(b, rec).text()),
        Expr::Bin(op, a, b) => compare(*op, &eval(a, rec), &eval(b, rec)),
        Expr::Call(name, args) => {
            let arg = |i: usize| args.get(i).map(|a| eval(a, rec)).unwrap_or(Val::Blank);
            match name.as_str() {
                "AND" => Val::Bool(args.iter().all(|a| eval(a, rec).truthy())),
                "OR" => Val::Bool(args.iter().any(|a| eval(a, rec).truthy())),
                "NOT" => Val::Bool(!arg(0).truthy()),
                "IF" => {
                    if arg(0).truthy() {
                        arg(1)
                    } else {
                        arg(2)
                    }
                }
                "IS_AFTER" | "IS_BEFORE" => match (arg(0).date(), arg(1).date()) {
                    (Some(x), Some(y)) => Val::Bool(if name == "IS_AFTER" { x > y } else { x < y }),
                    _ => Val::Blank,
                },
                "DATETIME_PARSE" => arg(0).date().map(Val::Date).unwrap_or(Val::Blank),
                "BLANK" => Val::Blank,
                "TRUE" => Val::Bool(true),
                "FALSE" => Val::Bool(false),
                "RECORD_ID" => Val::Str(rec.record_id()),
                "LOWER" => Val::Str(arg(0).text().to_lowercase()),
                "UPPER" => Val::Str(arg(0).text().to_uppercase()),
                "TRIM" => Val::Str(arg(0).text().trim().to_string()),
                "LEN" => Val::Num(arg(0).text().chars().count() as f64),
                _ => Val::Blank,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    struct R;
    impl RecordView for R {
        fn field(&self, name: &str) -> Val {
            match name {
                "Last Modified" => Val::Str("2024-05-01T12:00:01.000Z".into()),
                "Status" => Val::Str("new".into()),
                _ => Val::Blank,
            }
        }
        fn record_id(&self) -> String {
            "recA".into()
        }
    }

    fn run(f: &str) -> bool {
        eval(&parse(f, |n| n != "Nope").unwrap(), &R).truthy()
    }

    #[test]
    fn evaluates_what_leadcache_sends() {
        assert!(run(
            "IS_AFTER({Last Modified}, DATETIME_PARSE('2024-05-01T12:00:00.000Z'))"
        ));
        assert!(!run(
            "IS_AFTER({Last Modified}, DATETIME_PARSE('2024-05-01T12:00:01.000Z'))"
        ));
        assert!(run("OR({Status} = 'won', {Status} = 'new')"));
        assert!(run(
            "AND({Email} = '', {Email} = BLANK(), NOT({Status} = 'lost'))"
        ));
        assert!(run("RECORD_ID() = 'recA'"));
        assert!(!run("{Status} != 'new'"));
    }

    #[test]
    fn rejects_what_airtable_rejects() {
        assert_eq!(parse("SUM(1,2)", |_| true), Err(FormulaError::Invalid));
        assert_eq!(parse("{A} = ", |_| true), Err(FormulaError::Invalid));
        assert_eq!(
            parse("AND({Nope} = 1, {X} = 2)", |n| n == "X"),
            Err(FormulaError::UnknownFields(vec!["nope".into()]))
        );
    }
}
