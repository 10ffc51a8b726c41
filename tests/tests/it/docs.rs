//! The README and `docs/`: the README stays a door (under 12 KB), every relative link and
//! anchor resolves, and every command they show names a script, a binary, a `stackctl`
//! subcommand or an API route that exists.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use regex::Regex;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const PAGES: [&str; 5] = ["api", "security", "operating", "deploying", "developing"];

fn pages() -> Vec<PathBuf> {
    let mut all = vec![Path::new(ROOT).join("README.md")];
    all.extend(
        PAGES
            .iter()
            .map(|p| Path::new(ROOT).join(format!("docs/{p}.md"))),
    );
    all
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|_| panic!("{} exists", path.display()))
}

/// GitHub's anchor of a heading.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The text outside fenced code blocks, and the blocks' lines (continuations joined).
fn split(text: &str) -> (String, Vec<String>) {
    let (mut prose, mut code, mut fenced, mut pending) =
        (String::new(), Vec::new(), false, String::new());
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            prose.push_str(line);
            prose.push('\n');
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => pending.push_str(head),
            None => {
                pending.push_str(line);
                code.push(std::mem::take(&mut pending));
            }
        }
    }
    (prose, code)
}

fn anchors(text: &str) -> BTreeSet<String> {
    let (prose, _) = split(text);
    prose
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|h| slug(h.trim_start_matches('#')))
        .collect()
}

#[test]
fn docs_the_readme_is_a_door_and_every_page_exists() {
    let readme = read(&Path::new(ROOT).join("README.md"));
    assert!(
        readme.len() < 12 * 1024,
        "README.md is {} bytes",
        readme.len()
    );
    for page in PAGES {
        assert!(
            readme.contains(&format!("(docs/{page}.md)")),
            "the README links docs/{page}.md"
        );
    }
}

#[test]
fn docs_every_link_and_anchor_resolves() {
    let link = Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    let mut checked = 0;
    for page in pages() {
        let text = read(&page);
        let (prose, _) = split(&text);
        for m in link.captures_iter(&prose) {
            let target = &m[1];
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
            let resolved = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            assert!(
                resolved.exists(),
                "{}: {target} does not exist",
                page.display()
            );
            if !anchor.is_empty() {
                assert!(
                    anchors(&read(&resolved)).contains(anchor),
                    "{}: no heading #{anchor} in {}",
                    page.display(),
                    resolved.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 15, "{checked} links checked");
}

#[test]
fn docs_every_command_names_a_script_binary_subcommand_or_route_that_exists() {
    let bins = tests::bin_dir();
    let usage = std::process::Command::new(bins.join("stackctl"))
        .arg("no-such-command")
        .output()
        .expect("stackctl is built (infra/test.sh builds every binary)");
    let usage = String::from_utf8_lossy(&usage.stderr).to_string();
    assert!(usage.contains("usage: stackctl"), "{usage}");
    let inline = Regex::new(r"`([^`\n]+)`").unwrap();
    let script = Regex::new(r"(?:^|[\s(`])(infra/[\w./-]+\.sh)").unwrap();
    let stackctl = Regex::new(r"stackctl(?: --)? ([a-z][a-z-]+)").unwrap();
    let binary = Regex::new(r"--bin ([\w-]+)").unwrap();
    let curl = Regex::new(r"curl\b.*?localhost:3000(/[^\s'?]*)").unwrap();
    let (mut scripts, mut subcommands, mut routes) = (0, 0, 0);
    for page in pages() {
        let text = read(&page);
        let (_, code) = split(&text);
        let where_ = page.display().to_string();
        for m in script.captures_iter(&text) {
            let path = Path::new(ROOT).join(&m[1]);
            assert!(path.exists(), "{where_}: {} does not exist", &m[1]);
            scripts += 1;
        }
        // In commands and in inline code: `stackctl erase PHONE`.
        let spans: Vec<String> = inline
            .captures_iter(&text)
            .map(|m| m[1].to_owned())
            .chain(code.iter().cloned())
            .collect();
        for span in &spans {
            for m in stackctl.captures_iter(span) {
                let sub = &m[1];
                assert!(
                    usage.contains(&format!(" {sub} ")) || usage.contains(&format!(" {sub}\n")),
                    "{where_}: `stackctl {sub}` is no subcommand: {usage}"
                );
                subcommands += 1;
            }
        }
        for m in binary.captures_iter(&text) {
            assert!(bins.join(&m[1]).exists(), "{where_}: no binary {}", &m[1]);
        }
        for line in &spans {
            for m in curl.captures_iter(line) {
                let path = &m[1];
                let post =
                    line.contains(" -d ") || line.contains("--data") || line.contains("-X POST");
                let served = shared::endpoints::routes().any(|(route, _)| {
                    (route.method.as_str() == "POST") == post
                        && shared::http::match_path(route.path, path).is_some()
                });
                assert!(
                    served,
                    "{where_}: curl {path} ({}) is no route",
                    if post { "POST" } else { "GET" }
                );
                routes += 1;
            }
        }
    }
    assert!(
        scripts >= 5 && subcommands >= 5 && routes >= 8,
        "{scripts} scripts, {subcommands} stackctl commands, {routes} routes checked"
    );
}
