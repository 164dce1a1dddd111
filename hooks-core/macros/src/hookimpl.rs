//! `#[hookimpl]`: the implementation as written (wrappers renamed to the
//! spec's hidden wrapper methods), plus `impl Implements<dyn Trait>` listing
//! the implemented hooks with their options.

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{ImplItem, ItemImpl};

use crate::{take_attrs, wrapper_method};

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    if !args.is_empty() {
        return Err(syn::Error::new(
            args.span(),
            "#[hookimpl] on an impl block takes no arguments; put options on its methods",
        ));
    }
    let mut block: ItemImpl = syn::parse2(item)?;
    let Some((None, spec, _)) = &block.trait_ else {
        return Err(syn::Error::new(
            block.span(),
            "#[hookimpl] goes on `impl YourSpec for YourPlugin`",
        ));
    };
    let spec = spec.clone();
    let mut decls = Vec::new();
    let mut any_async = false;
    for item in &mut block.items {
        let ImplItem::Fn(method) = item else { continue };
        let (mut priority, mut tryfirst, mut trylast, mut wrapper) = (0i32, false, false, false);
        let (mut before, mut after) = (Vec::new(), Vec::new());
        take_attrs(&mut method.attrs, "hookimpl", |meta| {
            if meta.path.is_ident("priority") {
                let n: syn::LitInt = meta.value()?.parse()?;
                priority = n.base10_parse()?;
            } else if meta.path.is_ident("tryfirst") {
                tryfirst = true;
            } else if meta.path.is_ident("trylast") {
                trylast = true;
            } else if meta.path.is_ident("wrapper") {
                wrapper = true;
            } else if meta.path.is_ident("before") {
                before.extend(plugin_names(meta.value()?)?);
            } else if meta.path.is_ident("after") {
                after.extend(plugin_names(meta.value()?)?);
            } else {
                return Err(meta.error(
                    "unknown hookimpl option; expected priority = N, tryfirst, trylast, wrapper, \
                     before = \"plugin\" | [\"plugin\", ...] or after = ...",
                ));
            }
            Ok(())
        })?;
        if tryfirst && trylast {
            return Err(syn::Error::new(
                method.sig.span(),
                "a hookimpl is tryfirst or trylast, not both",
            ));
        }
        any_async |= method.sig.asyncness.is_some();
        let hook = method.sig.ident.to_string();
        if wrapper {
            method.sig.ident = wrapper_method(&method.sig.ident);
        }
        let tier = match (tryfirst, trylast) {
            (true, _) => quote!(hooks_core::Tier::TryFirst),
            (_, true) => quote!(hooks_core::Tier::TryLast),
            _ => quote!(hooks_core::Tier::Normal),
        };
        decls.push(quote! {
            hooks_core::ImplDecl {
                hook: #hook,
                priority: #priority,
                tier: #tier,
                wrapper: #wrapper,
                before: &[#(#before),*],
                after: &[#(#after),*],
            }
        });
    }
    let async_trait = any_async.then(|| quote!(#[hooks_core::async_trait]));
    let (impl_generics, _, where_clause) = block.generics.split_for_impl();
    let self_ty = &block.self_ty;
    Ok(quote! {
        #async_trait
        #block

        impl #impl_generics hooks_core::Implements<dyn #spec> for #self_ty #where_clause {
            const HOOKIMPLS: &'static [hooks_core::ImplDecl] = &[#(#decls),*];
            fn into_spec(self: ::std::sync::Arc<Self>) -> ::std::sync::Arc<dyn #spec> {
                self
            }
        }
    })
}

/// `"name"` or `["a", "b"]`: the plugins a `before` / `after` names.
fn plugin_names(value: syn::parse::ParseStream<'_>) -> syn::Result<Vec<syn::LitStr>> {
    if value.peek(syn::token::Bracket) {
        let list: syn::ExprArray = value.parse()?;
        return list
            .elems
            .iter()
            .map(|e| match e {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Ok(s.clone()),
                other => Err(syn::Error::new(
                    other.span(),
                    "expected a plugin name string",
                )),
            })
            .collect();
    }
    Ok(vec![value.parse()?])
}
