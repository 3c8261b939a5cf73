//! The corpus has a few files with `//` line comments; strip them (outside strings)
//! before parsing. Numbers keep their text (serde_json's arbitrary precision), so a
//! decimal's scale survives.

pub fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if c == '/' && chars.peek() == Some(&'/') {
            for n in chars.by_ref() {
                if n == '\n' {
                    out.push('\n');
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn strips_comments_but_not_urls_in_strings() {
        let t = "{\"a\": \"http://x\", // note\n \"b\": 1}";
        let v: serde_json::Value = serde_json::from_str(&super::strip_comments(t)).unwrap();
        assert_eq!(v["a"], "http://x");
        assert_eq!(v["b"], 1);
    }
}
