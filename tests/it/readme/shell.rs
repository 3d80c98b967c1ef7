//! Just enough of shell syntax to find the `s3credsfs` commands in a doc's block.

/// Shell words of one line, up to a comment; operators (`&&`, `|`, `;`, `&`) are words
/// of their own. Quotes are removed; `$VAR` and `~` stay as written.
pub fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut started = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                started = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '"' => {
                started = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        q => word.push(q),
                    }
                }
            }
            '#' if !started => break,
            '<' | '>' => {
                // A redirection: its fd number is not a word, its target stays one.
                if started && !word.chars().all(|d| d.is_ascii_digit()) {
                    out.push(std::mem::take(&mut word));
                }
                word.clear();
                started = false;
                let mut op = c.to_string();
                while chars.peek().is_some_and(|n| "<>&".contains(*n)) {
                    op.extend(chars.next());
                }
                if op.ends_with('&') {
                    while chars
                        .peek()
                        .is_some_and(|n| n.is_ascii_digit() || *n == '-')
                    {
                        op.extend(chars.next());
                    }
                }
                out.push(op);
            }
            c if c.is_whitespace() || "&|;".contains(c) => {
                if started {
                    out.push(std::mem::take(&mut word));
                    started = false;
                }
                if !c.is_whitespace() {
                    let mut op = c.to_string();
                    while chars.peek().is_some_and(|n| "&|".contains(*n)) {
                        op.extend(chars.next());
                    }
                    out.push(op);
                }
            }
            c => {
                started = true;
                word.push(c);
            }
        }
    }
    if started {
        out.push(word);
    }
    out
}

/// The `s3credsfs` invocations of a shell block, each as its arguments (without the
/// program), with the line it came from; heredoc bodies are skipped.
pub fn invocations(script: &str) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    let mut heredoc: Option<String> = None;
    let mut pending = String::new();
    for raw in script.lines() {
        if let Some(end) = &heredoc {
            if raw.trim() == end {
                heredoc = None;
            }
            continue;
        }
        if let Some(start) = raw.find("<<") {
            let end = raw[start + 2..].trim().trim_matches(['\'', '"', '-']);
            heredoc = Some(
                end.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
        let line = raw.trim_start_matches("$ ");
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        let line = std::mem::take(&mut pending) + line;
        for command in words(&line).split(|w| ["&&", "||", "|", ";", "&"].contains(&w.as_str())) {
            // `VAR=value` prefixes are environment, not the command.
            let start = command
                .iter()
                .position(|w| !w.contains('=') || w.starts_with('-'))
                .unwrap_or(command.len());
            let mut plain = Vec::new();
            let mut rest = command[start..].iter();
            while let Some(w) = rest.next() {
                if w.starts_with('<') || w.starts_with('>') {
                    // `>&2` names its target itself; `> FILE` takes the next word.
                    if !w.ends_with(|c: char| c.is_ascii_digit() || c == '-') {
                        rest.next();
                    }
                    continue;
                }
                plain.push(w.clone());
            }
            let command = plain.as_slice();
            let args = match command {
                [program, rest @ ..]
                    if program == "s3credsfs" || program.ends_with("/s3credsfs") =>
                {
                    rest
                }
                [cargo, run, quiet, dashes, rest @ ..]
                    if [cargo, run, quiet, dashes] == [&"cargo", &"run", &"-q", &"--"] =>
                {
                    rest
                }
                _ => continue,
            };
            found.push((line.clone(), args.to_vec()));
        }
    }
    found
}
