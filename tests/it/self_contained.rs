//! The project stands on its own: no file of the repository refers to a path beside it (the
//! team's handbook folder is not part of what a user clones). CI also runs the whole suite in a
//! clone alone in an empty folder, which catches what a text search cannot.

use std::path::Path;

fn visit(dir: &Path, found: &mut Vec<String>, needle: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        // Symbolic links are not followed (a link cycle would never end).
        if entry.file_type().unwrap().is_dir() {
            // Build output, the demo's and simulate's output folders, git's own files.
            if !matches!(
                name.as_str(),
                "target" | ".git" | "vaten-demo" | "vaten-simulate"
            ) {
                visit(&path, found, needle);
            }
        } else if let Ok(text) = std::fs::read_to_string(&path) {
            for (i, line) in text.lines().enumerate() {
                if line.contains(needle) {
                    found.push(format!("{}:{}: {line}", path.display(), i + 1));
                }
            }
        }
    }
}

#[test]
fn no_file_refers_to_the_folder_beside_the_project() {
    // Spelled in two pieces so that this file does not find itself.
    let needle = ["..", "/shared"].concat();
    let mut found = Vec::new();
    visit(Path::new(env!("CARGO_MANIFEST_DIR")), &mut found, &needle);
    assert!(found.is_empty(), "{}", found.join("\n"));
}
