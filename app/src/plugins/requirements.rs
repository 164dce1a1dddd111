//! The plugins' requirements (`export_plugin!(..., requires = [...])`), in
//! one place: the order plugins are registered in (each after the plugins
//! it requires), and which plugins fail because one they require did not
//! load, is disabled, is not there, is part of a cycle, or failed after
//! loading (its migrations, its `on_plugins_loaded`): transitively, each
//! naming the chain.

use std::collections::BTreeMap;

use super::report::{Entry, Status};

pub(super) type Loaded = (String, Result<hookspecs::PluginExport, String>);

/// Why a plugin that requires `name` cannot be loaded, given the entries
/// of the report so far named so (`None`: one of them is loaded). A
/// disabled plugin is not there for the plugins that require it.
fn unmet(name: &str, report: &[Entry]) -> Option<String> {
    let mut named = report.iter().filter(|e| e.name == name);
    if named.clone().any(|e| e.status == Status::Loaded) {
        return None;
    }
    Some(match named.next().map(|e| &e.status) {
        None => format!("`{name}` is not there"),
        Some(Status::Failed(failed)) => format!("`{name}` did not load: {failed}"),
        Some(_) => format!("`{name}` is disabled, so it is not there"),
    })
}

/// Why a plugin that requires each of `requires` cannot run beside the
/// plugins of `report`, naming the first one missing (`None`: each is
/// loaded). What a reload judges, as startup does.
pub(super) fn unmet_requirement(requires: &[String], report: &[Entry]) -> Option<String> {
    requires.iter().find_map(|needed| {
        unmet(needed, report).map(|why| format!("it requires `{needed}`: {why}"))
    })
}

/// The loaded plugins in an order where each comes after the plugins it
/// requires; one whose requirement is missing, failed or part of a cycle
/// fails with the reason. `report` holds what became of the plugins found
/// before (linked in, disabled, refused as found).
pub(super) fn in_requirement_order(
    mut pending: BTreeMap<String, Loaded>,
    report: &[Entry],
) -> Vec<(String, String, Result<hookspecs::PluginExport, String>)> {
    fn visit(
        name: &str,
        pending: &mut BTreeMap<String, Loaded>,
        path: &mut Vec<String>,
        done: &mut Vec<(String, String, Result<hookspecs::PluginExport, String>)>,
        report: &[Entry],
    ) -> Result<(), String> {
        if let Some((_, _, outcome)) = done.iter().find(|(n, ..)| n == name) {
            return match outcome {
                Ok(_) => Ok(()),
                Err(why) => Err(format!("`{name}` did not load: {why}")),
            };
        }
        if let Some(start) = path.iter().position(|p| p == name) {
            let mut cycle = path[start..].to_vec();
            cycle.push(name.to_owned());
            return Err(format!("requirement cycle {}", cycle.join(" -> ")));
        }
        let Some((source, export)) = pending.remove(name) else {
            // Not one of the folder's to load: linked in, disabled, refused
            // as found (a misnamed file may bear the name too), or absent.
            return unmet(name, report).map_or(Ok(()), Err);
        };
        path.push(name.to_owned());
        let export = export.and_then(|export| {
            for needed in &export.requires {
                visit(needed, pending, path, done, report)
                    .map_err(|why| format!("it requires `{needed}`: {why}"))?;
            }
            Ok(export)
        });
        path.pop();
        let outcome = match &export {
            Ok(_) => Ok(()),
            Err(why) => Err(format!("`{name}` did not load: {why}")),
        };
        done.push((name.to_owned(), source, export));
        outcome
    }
    let mut done = Vec::new();
    while let Some(name) = pending.keys().next().cloned() {
        let _ = visit(&name, &mut pending, &mut Vec::new(), &mut done, report);
    }
    done
}

/// After `failed` (loaded, then failed at its migrations or its
/// `on_plugins_loaded`) is marked failed in `report`: fails every loaded
/// plugin that requires it, and those that require them, each naming its
/// requirement and why that failed. Their names, in that order, for the
/// caller to take them out.
pub(super) fn fail_dependents(report: &mut [Entry], failed: &str) -> Vec<String> {
    let mut gone = vec![failed.to_owned()];
    let mut next = 0;
    while let Some(requirement) = gone.get(next).cloned() {
        next += 1;
        let why = report
            .iter()
            .find(|e| e.name == requirement && e.status != Status::Loaded)
            .map(Entry::status_text)
            .unwrap_or_default();
        for entry in report.iter_mut() {
            if entry.status == Status::Loaded && entry.requires.contains(&requirement) {
                entry.status = Status::Failed(format!(
                    "it requires `{requirement}`: `{requirement}` {why}"
                ));
                gone.push(entry.name.clone());
            }
        }
    }
    gone.split_off(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::Kind;

    fn entry(name: &str, status: Status, requires: &[&str]) -> Entry {
        Entry {
            requires: requires.iter().map(|r| (*r).to_owned()).collect(),
            ..Entry::new(name.into(), String::new(), Kind::Native, status)
        }
    }

    #[test]
    fn a_plugin_failing_after_loading_fails_the_plugins_requiring_it_down_the_chain() {
        let mut report = vec![
            entry(
                "base",
                Status::Failed("on_plugins_loaded: boom".into()),
                &[],
            ),
            entry("middle", Status::Loaded, &["base"]),
            entry("top", Status::Loaded, &["middle", "other"]),
            entry("other", Status::Loaded, &[]),
            entry("alone", Status::Loaded, &["other"]),
        ];
        assert_eq!(fail_dependents(&mut report, "base"), ["middle", "top"]);
        let status = |name: &str| {
            let entry = report.iter().find(|e| e.name == name).unwrap();
            entry.status_text()
        };
        assert_eq!(
            status("middle"),
            "failed: it requires `base`: `base` failed: on_plugins_loaded: boom"
        );
        assert_eq!(
            status("top"),
            "failed: it requires `middle`: `middle` failed: it requires `base`: `base` failed: \
             on_plugins_loaded: boom"
        );
        assert_eq!(status("other"), "loaded");
        assert_eq!(status("alone"), "loaded");
    }

    #[test]
    fn a_requirement_disabled_or_refused_as_found_is_unmet_and_a_loaded_one_is_met() {
        let report = vec![
            entry("off", Status::Disabled, &[]),
            entry("twin", Status::Failed("found twice".into()), &[]),
            entry("twin", Status::Failed("found twice".into()), &[]),
            entry("linked", Status::Loaded, &[]),
        ];
        assert_eq!(
            unmet("off", &report).unwrap(),
            "`off` is disabled, so it is not there"
        );
        assert_eq!(
            unmet("twin", &report).unwrap(),
            "`twin` did not load: found twice"
        );
        assert_eq!(unmet("linked", &report), None);
        assert_eq!(
            unmet_requirement(&["linked".into(), "gone".into(), "off".into()], &report).unwrap(),
            "it requires `gone`: `gone` is not there"
        );
        assert_eq!(unmet_requirement(&["linked".into()], &report), None);
    }
}
