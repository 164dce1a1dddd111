//! `#[hookimpl]`: the implementation as written (wrappers renamed to the
//! spec's hidden wrapper methods), plus `impl Implements<dyn Trait>` listing
//! the implemented hooks with their options.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
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
    let Some((spec, _)) = &block.trait_ else {
        return Err(syn::Error::new(
            block.span(),
            "#[hookimpl] goes on `impl YourSpec for YourPlugin`",
        ));
    };
    let spec = spec.clone();
    let spec_name = spec
        .segments
        .last()
        .map(|s| s.ident.to_string())
        .unwrap_or_default();
    let mut decls = Vec::new();
    let mut checks = Vec::new();
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
        if let Some(asyncness) = method.sig.asyncness {
            crate::async_enabled(asyncness.span)?;
            any_async = true;
        }
        let hook = method.sig.ident.to_string();
        checks.push(asyncness_check(
            &spec,
            &spec_name,
            &method.sig.ident,
            method.sig.asyncness.is_some(),
            wrapper,
        ));
        if wrapper {
            method.sig.ident = wrapper_method(&method.sig.ident);
        }
        let tier = match (tryfirst, trylast) {
            (true, _) => quote!(hookery::Tier::TryFirst),
            (_, true) => quote!(hookery::Tier::TryLast),
            _ => quote!(hookery::Tier::Normal),
        };
        decls.push(quote! {
            hookery::ImplDecl {
                hook: #hook,
                priority: #priority,
                tier: #tier,
                wrapper: #wrapper,
                before: &[#(#before),*],
                after: &[#(#after),*],
            }
        });
    }
    let impl_items = if any_async {
        // rustdoc sees the spec's `async fn`s as written when it documents
        // the spec's own crate (`#[hookspec]`, `as_written`), and the
        // `#[async_trait]` form otherwise; no signature of an async method
        // matches both, and this macro cannot tell which one it meets. The
        // documented impl leaves its async methods out (the trait's
        // defaults stand in; only rustdoc sees this impl).
        let mut documented = block.clone();
        documented
            .items
            .retain(|item| !matches!(item, ImplItem::Fn(f) if f.sig.asyncness.is_some()));
        quote! {
            #[cfg(doc)]
            #documented
            #[cfg(not(doc))]
            #[hookery::async_trait]
            #block
        }
    } else {
        quote!(#block)
    };
    let (impl_generics, _, where_clause) = block.generics.split_for_impl();
    let self_ty = &block.self_ty;
    Ok(quote! {
        #impl_items

        #(#checks)*

        impl #impl_generics hookery::Implements<dyn #spec> for #self_ty #where_clause {
            const HOOKIMPLS: &'static [hookery::ImplDecl] = &[#(#decls),*];
            fn into_spec(self: ::std::sync::Arc<Self>) -> ::std::sync::Arc<dyn #spec> {
                self
            }
        }
    })
}

/// A compile-time check that `hook` is async in the spec exactly when its
/// implementation is, failing at the implementation's name with what to
/// write (rustc's own error for a mismatch is about lifetime parameters
/// of the desugared async method).
fn asyncness_check(
    spec: &syn::Path,
    spec_name: &str,
    hook: &syn::Ident,
    is_async: bool,
    wrapper: bool,
) -> TokenStream {
    let write_async = if wrapper {
        format!(
            "hook `{hook}` of `{spec_name}` is async: its wrapper is `async fn {hook}(&self, \
             ..., next: AsyncNext<'_, _>)` and runs the rest of the call with `next.await`"
        )
    } else {
        format!("hook `{hook}` of `{spec_name}` is async: write `async fn {hook}`")
    };
    let write_sync = if wrapper {
        format!(
            "hook `{hook}` of `{spec_name}` is sync: its wrapper is `fn {hook}(&self, ..., \
             next: Next<'_, _>)` (no `async`) and runs the rest of the call with `next.call()`"
        )
    } else {
        format!("hook `{hook}` of `{spec_name}` is sync: write `fn {hook}`, without `async`")
    };
    let hook_name = hook.to_string();
    quote_spanned! {hook.span()=>
        const _: () = hookery::__private::check_asyncness::<dyn #spec>(
            #hook_name, #is_async, #write_async, #write_sync,
        );
    }
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

#[cfg(all(test, feature = "async"))]
mod tests {
    use quote::quote;
    use syn::{ImplItem, Item};

    /// rustdoc gets the impl without its async methods (see `expand`); the
    /// compiler the whole impl, through `#[async_trait]`.
    #[test]
    fn the_documented_impl_leaves_async_methods_to_the_trait() {
        let block = quote! {
            impl Events for Store {
                async fn saved(&self, id: u32) -> HookResult<u32> { Ok(id) }
                fn counted(&self) -> HookResult<u32> { Ok(1) }
            }
        };
        let file: syn::File = syn::parse2(super::expand(quote!(), block).unwrap()).unwrap();
        let impls: Vec<_> = file
            .items
            .iter()
            .filter_map(|item| match item {
                Item::Impl(i) if i.attrs.iter().any(|a| a.path().is_ident("cfg")) => Some(i),
                _ => None,
            })
            .collect();
        let cfg = |i: &syn::ItemImpl| {
            let attrs = &i.attrs;
            quote!(#(#attrs)*).to_string().replace(' ', "")
        };
        let methods = |i: &syn::ItemImpl| -> Vec<String> {
            i.items
                .iter()
                .filter_map(|item| match item {
                    ImplItem::Fn(f) => Some(f.sig.ident.to_string()),
                    _ => None,
                })
                .collect()
        };
        let [documented, compiled] = impls[..] else {
            panic!("two impls expected, got {}", impls.len())
        };
        assert_eq!(cfg(documented), "#[cfg(doc)]");
        assert_eq!(methods(documented), ["counted"]);
        assert_eq!(cfg(compiled), "#[cfg(not(doc))]#[hookery::async_trait]");
        assert_eq!(methods(compiled), ["saved", "counted"]);
    }
}
