//! The attribute macros of `hooks-core`: `#[hookspec]` on a trait,
//! `#[hookimpl]` on an implementation of it. Documented in `hooks-core`.

use proc_macro::TokenStream;

mod hookimpl;
mod hookspec;

/// Makes a trait a hook specification. See the `hooks_core` crate docs.
#[proc_macro_attribute]
pub fn hookspec(args: TokenStream, item: TokenStream) -> TokenStream {
    hookspec::expand(args.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Marks an `impl Spec for Plugin` block as hook implementations. See the
/// `hooks_core` crate docs.
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

/// The hidden trait method a wrapper of hook `hook` implements.
fn wrapper_method(hook: &syn::Ident) -> syn::Ident {
    quote::format_ident!("__wrap_{}", hook)
}
