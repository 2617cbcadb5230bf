//! XML-like text form of nodes, for logs and test failures.
//!
//! `{}` prints one line, `{:#}` and `{:?}` print indented lines. Attribute
//! values and text are XML-escaped; byte content is shown as hex (the first
//! 64 bytes) with its length, or as text when it is short printable UTF-8.

use std::fmt::{self, Write};

use crate::node::{Content, Node};

const MAX_HEX: usize = 64;
const MAX_TEXT: usize = 256;

fn escape(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    for c in s.chars() {
        match c {
            '<' => f.write_str("&lt;")?,
            '>' => f.write_str("&gt;")?,
            '&' => f.write_str("&amp;")?,
            '"' => f.write_str("&quot;")?,
            c if c.is_control() => write!(f, "&#x{:x};", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    Ok(())
}

fn bytes(f: &mut fmt::Formatter<'_>, b: &[u8]) -> fmt::Result {
    if b.len() <= MAX_TEXT
        && let Ok(s) = std::str::from_utf8(b)
        && !s.is_empty()
        && !s.chars().any(char::is_control)
    {
        return escape(f, s);
    }
    write!(f, "[{} bytes: ", b.len())?;
    for x in b.iter().take(MAX_HEX) {
        write!(f, "{x:02x}")?;
    }
    if b.len() > MAX_HEX {
        f.write_str("…")?;
    }
    f.write_str("]")
}

fn write_node(f: &mut fmt::Formatter<'_>, n: &Node, indent: Option<usize>) -> fmt::Result {
    if let Some(i) = indent {
        for _ in 0..i {
            f.write_str("  ")?;
        }
    }
    f.write_char('<')?;
    escape(f, &n.tag)?;
    for (k, v) in n.attrs.iter() {
        f.write_char(' ')?;
        escape(f, k)?;
        f.write_str("=\"")?;
        escape(f, &v.to_string())?;
        f.write_char('"')?;
    }
    match &n.content {
        Content::None => return f.write_str("/>"),
        Content::Nodes(children) if !children.is_empty() => {
            f.write_char('>')?;
            for c in children {
                if indent.is_some() {
                    f.write_char('\n')?;
                }
                write_node(f, c, indent.map(|i| i + 1))?;
            }
            if let Some(i) = indent {
                f.write_char('\n')?;
                for _ in 0..i {
                    f.write_str("  ")?;
                }
            }
        }
        Content::Nodes(_) => f.write_char('>')?,
        Content::Bytes(b) => {
            f.write_char('>')?;
            bytes(f, b)?;
        }
        Content::Text(s) => {
            f.write_char('>')?;
            escape(f, s)?;
        }
        Content::Jid(j) => {
            f.write_char('>')?;
            escape(f, &j.to_string())?;
        }
    }
    f.write_str("</")?;
    escape(f, &n.tag)?;
    f.write_char('>')
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_node(f, self, f.alternate().then_some(0))
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_node(f, self, Some(0))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Jid, Node};

    #[test]
    fn xml_like_forms() {
        let n = Node::builder("iq")
            .attr("id", "a\"b")
            .attr("to", Jid::server_jid())
            .children([
                Node::builder("enc").bytes(vec![0u8, 1, 255]).build(),
                Node::builder("body").bytes(&b"hi <you>"[..]).build(),
                Node::new("x"),
            ])
            .build();
        assert_eq!(
            n.to_string(),
            "<iq id=\"a&quot;b\" to=\"@s.whatsapp.net\"><enc>[3 bytes: 0001ff]</enc>\
             <body>hi &lt;you&gt;</body><x/></iq>"
        );
        assert_eq!(
            format!("{n:#}"),
            "<iq id=\"a&quot;b\" to=\"@s.whatsapp.net\">\n  <enc>[3 bytes: 0001ff]</enc>\n  \
             <body>hi &lt;you&gt;</body>\n  <x/>\n</iq>"
        );
        assert_eq!(format!("{n:?}"), format!("{n:#}"));
        let big = Node::builder("b").bytes(vec![7u8; 100]).build().to_string();
        assert!(big.starts_with("<b>[100 bytes: 0707"));
        assert!(big.ends_with("…]</b>"));
    }
}
