//! What a hook call returns: every implementation's value in call order,
//! each with the name of the plugin that returned it.

use std::marker::PhantomData;

use crate::error::HookError;

/// One implementation's value and the plugin that returned it: the items
/// of [`Results`] (see its example), and what a `firstresult` call returns.
///
/// ```
/// # use hookery::prelude::*;
/// # #[hookspec] pub trait Auth { #[hookspec(firstresult)] fn who(&self, token: &str) -> HookResult<Option<u32>>; }
/// # struct Tokens;
/// # #[hookimpl] impl Auth for Tokens { fn who(&self, token: &str) -> HookResult<Option<u32>> { Ok((token == "t").then_some(7)) } }
/// let pm = PluginManager::<dyn Auth>::new();
/// pm.register("tokens", Tokens)?;
/// let answer = pm.hook().who("t")?.expect("recognised");
/// assert_eq!(answer, Answer { plugin: "tokens", value: 7 });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer<T> {
    /// The plugin's registered name.
    pub plugin: &'static str,
    /// What its implementation returned.
    pub value: T,
}

/// The results of a (non-`firstresult`) hook call, in call order.
///
/// Typed: every implementation that ran contributes its value, whatever it
/// is. pluggy drops `None` from a call's results; here a `HookResult<()>`
/// hook gives one `()` per implementation, and a `HookResult<Option<T>>`
/// hook one `Option` per implementation, `None`s included. For those,
/// [`somes`](Results::somes) gives only the answers (pluggy's list).
///
/// Under [`ErrorPolicy::Continue`](crate::ErrorPolicy::Continue) the errors
/// of failed implementations are kept beside the values; under the default
/// policy a failure fails the whole call, so [`Results::errors`] is empty.
///
/// ```
/// # use hookery::prelude::*;
/// # #[hookspec] pub trait Events { fn saved(&self, id: u32) -> HookResult<u32>; }
/// # struct Store(u32);
/// # #[hookimpl] impl Events for Store { fn saved(&self, id: u32) -> HookResult<u32> { Ok(id + self.0) } }
/// let pm = PluginManager::<dyn Events>::new();
/// pm.register("a", Store(0))?;
/// pm.register("b", Store(10))?;
/// let results = pm.hook().saved(1)?;
/// // Call order: `b`, registered later, first.
/// assert_eq!(results.plugins().collect::<Vec<_>>(), ["b", "a"]);
/// assert_eq!(results.get("a"), Some(&1));
/// for Answer { plugin, value } in results.answers() {
///     println!("{plugin} said {value}");
/// }
/// assert_eq!(results.into_values(), [11, 1]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
// `repr(C)`, the errors first: the first 16 bytes of an empty `Results`
// (what a call with nothing to do returns) are then the errors' null and
// the answers' tag, both written, which for `Results<u64>` the compiler
// writes as one 16-byte store. Whoever moves the value reads those bytes
// in one 16-byte load, and a load that a store covers only in part cannot
// be forwarded from it: it waits for the store to reach the cache. With
// the tag first and the errors last, that wait made an idle sync call
// 3.3x slower in the dispatch benchmark (BENCHMARKS.md, "Fourteenth
// session").
#[repr(C)]
pub struct Results<T> {
    /// Boxed: errors are rare, and an empty `Vec<HookError>` still costs
    /// an out-of-line drop (a loop over its elements) on every call; a
    /// null pointer costs one test (see [`Errors`]).
    pub(crate) errors: Errors,
    pub(crate) answers: Answers<T>,
}

/// The errors of a call under `ErrorPolicy::Continue`: one word, null
/// when there are none (nearly always).
#[allow(
    clippy::box_collection,
    reason = "one word to move and test, not three"
)]
pub(crate) type Errors = Option<Box<Vec<HookError>>>;

impl<T> Default for Results<T> {
    fn default() -> Self {
        Results {
            answers: Answers::Empty,
            errors: None,
        }
    }
}

// Shown as the vectors they stand for.
impl<T: std::fmt::Debug> std::fmt::Debug for Results<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Results")
            .field("answers", &self.answers())
            .field("errors", &self.errors())
            .finish()
    }
}

/// The values of a call, held inline while there is at most one: most
/// hooks have zero or one implementation, and a one-value call then
/// allocates nothing (the heap `Vec` cost about 125 instructions a call,
/// more than the rest of a one-implementation call's bookkeeping).
pub(crate) enum Answers<T> {
    Empty,
    One(Answer<T>),
    Many(Vec<Answer<T>>),
}

impl<T> Answers<T> {
    /// Appends `answer`.
    #[inline]
    pub(crate) fn push(&mut self, answer: Answer<T>) {
        match self {
            Answers::Many(many) => many.push(answer),
            Answers::Empty => *self = Answers::One(answer),
            Answers::One(_) => self.spill(answer),
        }
    }

    /// A second value where room was made for one (a wrapper adding to
    /// the results): out of line, so that `push` stays small.
    #[cold]
    #[inline(never)]
    fn spill(&mut self, answer: Answer<T>) {
        let mut many = Vec::with_capacity(2);
        if let Answers::One(first) = std::mem::replace(self, Answers::Empty) {
            many.push(first);
        }
        many.push(answer);
        *self = Answers::Many(many);
    }

    fn as_slice(&self) -> &[Answer<T>] {
        match self {
            Answers::Empty => &[],
            Answers::One(one) => std::slice::from_ref(one),
            Answers::Many(many) => many,
        }
    }

    /// The first value, without allocating.
    pub(crate) fn into_first(self) -> Option<Answer<T>> {
        match self {
            Answers::Empty => None,
            Answers::One(one) => Some(one),
            Answers::Many(many) => many.into_iter().next(),
        }
    }

    fn into_vec(self) -> Vec<Answer<T>> {
        match self {
            Answers::Empty => Vec::new(),
            Answers::One(one) => vec![one],
            Answers::Many(many) => many,
        }
    }
}

impl<T> Results<T> {
    /// The values with their plugins, in call order.
    pub fn answers(&self) -> &[Answer<T>] {
        self.answers.as_slice()
    }

    /// The values alone, in call order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &T> + '_ {
        self.answers().iter().map(|a| &a.value)
    }

    /// The values alone, in call order.
    pub fn into_values(self) -> Vec<T> {
        self.answers
            .into_vec()
            .into_iter()
            .map(|a| a.value)
            .collect()
    }

    /// The plugins that answered, in call order.
    pub fn plugins(&self) -> impl ExactSizeIterator<Item = &'static str> + '_ {
        self.answers().iter().map(|a| a.plugin)
    }

    /// The value returned by `plugin`, if it ran and succeeded.
    pub fn get(&self, plugin: &str) -> Option<&T> {
        self.answers()
            .iter()
            .find(|a| a.plugin == plugin)
            .map(|a| &a.value)
    }

    /// Errors of failed implementations (policy `Continue` only), in call order.
    pub fn errors(&self) -> &[HookError] {
        self.errors.as_deref().map_or(&[], Vec::as_slice)
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.answers().len()
    }

    /// No value.
    pub fn is_empty(&self) -> bool {
        // Not the `Empty` tag alone: a call that collects into a vector
        // (two implementations or more) keeps it when none answered.
        self.answers().is_empty()
    }

    /// Appends a value (for wrappers that add to the outcome).
    pub fn push(&mut self, plugin: &'static str, value: T) {
        self.answers.push(Answer { plugin, value });
    }
}

impl<T> Results<Option<T>> {
    /// Only the implementations that answered `Some`, in call order, with
    /// their plugins: what pluggy's results list holds for such a hook.
    pub fn somes(&self) -> impl Iterator<Item = Answer<&T>> + '_ {
        self.answers().iter().filter_map(|a| {
            a.value.as_ref().map(|value| Answer {
                plugin: a.plugin,
                value,
            })
        })
    }

    /// The `Some` values alone, in call order.
    pub fn into_somes(self) -> Vec<T> {
        self.answers
            .into_vec()
            .into_iter()
            .filter_map(|a| a.value)
            .collect()
    }
}

impl<T> IntoIterator for Results<T> {
    type Item = Answer<T>;
    type IntoIter = std::vec::IntoIter<Answer<T>>;
    fn into_iter(self) -> Self::IntoIter {
        self.answers.into_vec().into_iter()
    }
}

impl<'a, T> IntoIterator for &'a Results<T> {
    type Item = &'a Answer<T>;
    type IntoIter = std::slice::Iter<'a, Answer<T>>;
    fn into_iter(self) -> Self::IntoIter {
        self.answers().iter()
    }
}

/// How a hook's outcomes are collected: all of them, or the first `Some`.
/// Chosen by `#[hookspec]`; generated code passes [`Collect::ALL`] or
/// [`Collect::FIRST`]. Zero-sized: the choice is the call's output type
/// ([`Finish`]), so the call loop's code for it is chosen at compile time
/// (a function pointer here cost an indirect call per hook call and a test
/// per implementation).
pub struct Collect<T, O>(PhantomData<fn(Results<T>) -> O>);

impl<T, O> Clone for Collect<T, O> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T, O> Copy for Collect<T, O> {}

impl<T, O: Finish<T>> Collect<T, O> {
    /// Whether `value` answers the call (and stops the chain).
    #[inline]
    pub(crate) fn answers(self, value: &T) -> bool {
        O::FIRST && O::answers(value)
    }

    /// Whether only the first answer counts (`firstresult`).
    #[inline]
    pub(crate) fn first(self) -> bool {
        O::FIRST
    }

    /// What the call returns, from its collected results.
    #[inline]
    pub(crate) fn finish(self, results: Results<T>) -> O {
        O::finish(results)
    }
}

/// What a hook call returns, made from its results: every value
/// ([`Results`]), or the first `Some` with its plugin (`firstresult`).
/// Implemented for those two types only.
pub trait Finish<T>: Sized {
    /// `firstresult`: the chain stops at the first value that answers.
    #[doc(hidden)]
    const FIRST: bool;
    /// Whether `value` answers (only asked when `FIRST`).
    #[doc(hidden)]
    fn answers(value: &T) -> bool;
    /// The call's return value.
    #[doc(hidden)]
    fn finish(results: Results<T>) -> Self;
}

impl<T> Finish<T> for Results<T> {
    const FIRST: bool = false;
    fn answers(_: &T) -> bool {
        false
    }
    #[inline]
    fn finish(results: Results<T>) -> Self {
        results
    }
}

impl<T> Finish<Option<T>> for Option<Answer<T>> {
    const FIRST: bool = true;
    #[inline]
    fn answers(value: &Option<T>) -> bool {
        value.is_some()
    }
    fn finish(results: Results<Option<T>>) -> Self {
        let Answer { plugin, value } = results.answers.into_first()?;
        value.map(|value| Answer { plugin, value })
    }
}

impl<T> Collect<T, Results<T>> {
    /// Every implementation's value, in call order.
    pub const ALL: Self = Collect(PhantomData);
}

impl<T> Collect<Option<T>, Option<Answer<T>>> {
    /// `firstresult`: stop at the first `Some`, return it with its plugin.
    pub const FIRST: Self = Collect(PhantomData);
}

#[cfg(test)]
mod tests {
    use super::{Answer, Answers, Results};

    #[test]
    fn values_stay_in_order_from_inline_to_the_heap() {
        let mut results = Results::<u32>::default();
        assert!(results.is_empty());
        results.push("a", 1);
        assert!(
            matches!(results.answers, Answers::One(_)),
            "one value is inline"
        );
        assert_eq!(results.len(), 1);
        results.push("b", 2);
        results.push("c", 3);
        assert!(matches!(results.answers, Answers::Many(_)));
        assert_eq!(results.plugins().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(results.get("b"), Some(&2));
        assert_eq!(
            format!("{results:?}"),
            r#"Results { answers: [Answer { plugin: "a", value: 1 }, Answer { plugin: "b", value: 2 }, Answer { plugin: "c", value: 3 }], errors: [] }"#
        );
        assert_eq!(results.into_values(), [1, 2, 3]);
    }

    #[test]
    fn one_inline_value_is_consumed_like_a_vector() {
        let mut results = Results::<Option<u32>>::default();
        results.push("a", Some(7));
        let answers: Vec<Answer<Option<u32>>> = results.into_iter().collect();
        assert_eq!(
            answers,
            [Answer {
                plugin: "a",
                value: Some(7)
            }]
        );
    }
}
