//! The order plugins are registered in: each after the plugins it
//! `requires`, a missing, failed or cyclic requirement failing its plugin.

pub(super) type Loaded = (String, Result<hookspecs::PluginExport, String>);

/// The loaded plugins in an order where each comes after the plugins it
/// requires; one whose requirement is missing, failed or part of a cycle
/// fails with the reason. `present` are plugins already registered.
pub(super) fn in_requirement_order(
    mut pending: std::collections::BTreeMap<String, Loaded>,
    present: &[String],
) -> Vec<(String, String, Result<hookspecs::PluginExport, String>)> {
    fn visit(
        name: &str,
        pending: &mut std::collections::BTreeMap<String, Loaded>,
        path: &mut Vec<String>,
        done: &mut Vec<(String, String, Result<hookspecs::PluginExport, String>)>,
        present: &[String],
    ) -> Result<(), String> {
        if present.iter().any(|p| p == name) {
            return Ok(());
        }
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
            return Err(format!("`{name}` is not there"));
        };
        path.push(name.to_owned());
        let export = export.and_then(|export| {
            for needed in &export.requires {
                visit(needed, pending, path, done, present)
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
        let _ = visit(&name, &mut pending, &mut Vec::new(), &mut done, present);
    }
    done
}
