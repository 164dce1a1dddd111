//! The attribute macros of `hookery`: `#[hookspec]` on a trait,
//! `#[hookimpl]` on an implementation of it. Documented in `hookery`.

use proc_macro::TokenStream;

mod hookimpl;
mod hookspec;

/// Makes a trait a hook specification. See the `hookery` crate docs.
#[proc_macro_attribute]
pub fn hookspec(args: TokenStream, item: TokenStream) -> TokenStream {
    hookspec::expand(args.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Marks an `impl Spec for Plugin` block as hook implementations. See the
/// `hookery` crate docs.
#[proc_macro_attribute]
pub fn hookimpl(args: TokenStream, item: TokenStream) -> TokenStream {
    hookimpl::expand(args.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Takes the `#[name(...)]` attributes off `attrs` and parses each with `parse`.
fn take_attrs(
    attrs: &mut Vec<syn::Attribute>,
    name: &str,
    mut parse: impl FnMut(syn::meta::ParseNestedMeta) -> syn::Result<()>,
) -> syn::Result<()> {
    let mut result = Ok(());
    attrs.retain(|attr| {
        if !attr.path().is_ident(name) {
            return true;
        }
        if let syn::Meta::List(_) = attr.meta {
            if let Err(e) = attr.parse_nested_meta(&mut parse) {
                result = Err(e);
            }
        }
        false
    });
    result
}

/// Fails at `span` (an `async` keyword) unless async hooks are enabled:
/// hookery's `async` feature turns on this crate's.
fn async_enabled(span: proc_macro2::Span) -> syn::Result<()> {
    if cfg!(feature = "async") {
        return Ok(());
    }
    Err(syn::Error::new(
        span,
        "async hooks need hookery's `async` feature: in Cargo.toml, \
         hookery = { version = \"0.1\", features = [\"async\"] }",
    ))
}

/// The hidden trait method a wrapper of hook `hook` implements: named
/// after the hook and spanned at it, so that rustc's errors about a
/// wrapper point at the method its author wrote and name its hook.
fn wrapper_method(hook: &syn::Ident) -> syn::Ident {
    quote::format_ident!("{}_wrapper", hook, span = hook.span())
}
