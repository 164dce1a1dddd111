//! `#[hookspec]`: the trait as written (plus supertraits, default bodies and
//! a hidden wrapper method per hook), `impl Spec for dyn Trait`, and the
//! typed relay `<Trait>Relay` with one calling method per hook.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{
    FnArg, GenericArgument, ItemTrait, Pat, PathArguments, ReturnType, TraitItem, TraitItemFn,
    Type, parse_quote,
};

use crate::{take_attrs, wrapper_method};

#[derive(Default)]
struct Options {
    firstresult: bool,
    historic: bool,
    on_continue: bool,
    concurrent: bool,
    timeout_ms: Option<u64>,
    warn_on_impl: Option<syn::LitStr>,
}

impl Options {
    fn take(method: &mut TraitItemFn) -> syn::Result<Self> {
        let mut o = Options::default();
        take_attrs(&mut method.attrs, "hookspec", |meta| {
            if meta.path.is_ident("firstresult") {
                o.firstresult = true;
            } else if meta.path.is_ident("historic") {
                o.historic = true;
            } else if meta.path.is_ident("concurrent") {
                o.concurrent = true;
            } else if meta.path.is_ident("on_error") {
                let policy: syn::LitStr = meta.value()?.parse()?;
                o.on_continue = match policy.value().as_str() {
                    "continue" => true,
                    "propagate" => false,
                    _ => {
                        return Err(syn::Error::new(
                            policy.span(),
                            "on_error is \"propagate\" (the default) or \"continue\"",
                        ));
                    }
                };
            } else if meta.path.is_ident("warn_on_impl") {
                o.warn_on_impl = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("timeout_ms") {
                let ms: syn::LitInt = meta.value()?.parse()?;
                o.timeout_ms = Some(ms.base10_parse()?);
            } else {
                return Err(meta.error(
                    "unknown hookspec option; expected firstresult, historic, concurrent, \
                     on_error = \"continue\" | \"propagate\", timeout_ms = N, \
                     or warn_on_impl = \"why\"",
                ));
            }
            Ok(())
        })?;
        Ok(o)
    }
}

/// One hook, as the generated code needs it.
struct Hook {
    index: usize,
    name: syn::Ident,
    is_async: bool,
    options: Options,
    /// Argument names and types after `&self`.
    args: Vec<(syn::Ident, Type)>,
    /// The implementations' value type (`T` of `HookResult<T>`).
    value: Type,
    /// What a call returns on success (and what `next` yields).
    output: TokenStream,
    /// `Collect::ALL` or `Collect::FIRST`.
    collect: TokenStream,
    docs: Vec<syn::Attribute>,
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    if !args.is_empty() {
        return Err(syn::Error::new(
            args.span(),
            "#[hookspec] on a trait takes no arguments",
        ));
    }
    let mut spec: ItemTrait = syn::parse2(item)?;
    if !spec.generics.params.is_empty() {
        return Err(syn::Error::new(
            spec.generics.span(),
            "a hook spec trait cannot be generic",
        ));
    }
    spec.supertraits.push(parse_quote!(::core::marker::Send));
    spec.supertraits.push(parse_quote!(::core::marker::Sync));
    spec.supertraits.push(parse_quote!('static));

    let trait_name = spec.ident.clone();
    let mut hooks = Vec::new();
    let mut wrappers = Vec::new();
    for item in &mut spec.items {
        let TraitItem::Fn(method) = item else {
            return Err(syn::Error::new(
                item.span(),
                "a hook spec trait holds only hook methods",
            ));
        };
        let hook = parse_hook(hooks.len(), method)?;
        if method.default.is_none() {
            let (spec_name, hook_name) = (trait_name.to_string(), hook.name.to_string());
            method.attrs.push(parse_quote!(#[allow(unused_variables)]));
            method.default = Some(parse_quote!({
                hookery::__private::not_implemented(#spec_name, #hook_name)
            }));
        }
        wrappers.push(wrapper_decl(&trait_name, &hook, &method.sig));
        hooks.push(hook);
    }
    if let Some(clash) = hooks.iter().find(|h| {
        hooks
            .iter()
            .any(|other| h.name == crate::wrapper_method(&other.name))
    }) {
        return Err(syn::Error::new(
            clash.name.span(),
            "a hook cannot be named `<another hook>_wrapper`: that is the name of the other \
             hook's wrapper method",
        ));
    }
    if hooks.is_empty() {
        return Err(syn::Error::new(
            spec.ident.span(),
            "a hook spec trait needs at least one hook method",
        ));
    }
    spec.items.extend(wrappers);
    let any_async = hooks.iter().any(|h| h.is_async);
    let trait_items = if any_async {
        let as_written = as_written(&spec);
        quote! {
            #[cfg(doc)]
            #as_written
            #[cfg(not(doc))]
            #[hookery::async_trait]
            #spec
        }
    } else {
        quote!(#spec)
    };

    let vis = &spec.vis;
    let relay = format_ident!("{}Relay", trait_name);
    let trait_str = trait_name.to_string();
    let specs = hooks.iter().map(hook_spec);
    let methods = hooks.iter().map(|hook| relay_method(hook, &trait_name));
    let relay_doc = format!(
        "Calls the hooks of [`{trait_name}`] on every registered plugin: what \
         `PluginManager::<dyn {trait_name}>::hook()` returns."
    );

    Ok(quote! {
        #trait_items

        impl hookery::Spec for dyn #trait_name {
            const NAME: &'static str = #trait_str;
            const HOOKS: &'static [hookery::HookSpec] = &[#(#specs),*];
            type Relay<'m> = #relay<'m>;
            fn relay(caller: hookery::__private::Caller<'_, Self>) -> #relay<'_> {
                #relay(caller)
            }
        }

        #[doc = #relay_doc]
        #vis struct #relay<'m>(hookery::__private::Caller<'m, dyn #trait_name>);

        impl<'m> #relay<'m> {
            #(#methods)*
        }
    })
}

fn parse_hook(index: usize, method: &mut TraitItemFn) -> syn::Result<Hook> {
    let options = Options::take(method)?;
    let sig = &method.sig;
    let err = |span: proc_macro2::Span, msg: &str| Err(syn::Error::new(span, msg));
    if !sig.generics.params.is_empty() {
        return err(sig.generics.span(), "a hook method cannot be generic");
    }
    match sig.inputs.first() {
        Some(FnArg::Receiver(r)) if matches!(r.kind, syn::ReceiverKind::Reference(_, _, None)) => {}
        _ => return err(sig.span(), "a hook method takes `&self` first"),
    }
    let mut args = Vec::new();
    for input in sig.inputs.iter().skip(1) {
        let FnArg::Typed(arg) = input else {
            unreachable!()
        };
        let Pat::Ident(name) = &*arg.pat else {
            return err(arg.pat.span(), "hook arguments must be plain names");
        };
        if let Type::Reference(r) = &*arg.ty {
            if r.mutability.is_some() {
                return err(
                    arg.ty.span(),
                    "a hook argument cannot be `&mut`: every implementation receives the same \
                     argument, so it is shared; take `&RefCell<T>` (sync hooks) or `&Mutex<T>` \
                     (async hooks, or across threads) and borrow it mutably inside the \
                     implementation",
                );
            }
        }
        if options.historic && matches!(*arg.ty, Type::Reference(_)) {
            return err(
                arg.ty.span(),
                "a historic hook is replayed later, so its arguments must be owned \
                 (Clone + Send + Sync + 'static), not references",
            );
        }
        args.push((name.ident.clone(), (*arg.ty).clone()));
    }
    let ReturnType::Type(_, ret) = &sig.output else {
        return err(sig.span(), "a hook method returns HookResult<T>");
    };
    let Some(value) = single_generic(ret) else {
        return err(ret.span(), "a hook method returns HookResult<T>");
    };
    let is_async = sig.asyncness.is_some();
    if is_async {
        crate::async_enabled(sig.asyncness.span())?;
    }
    if options.historic && options.firstresult {
        return err(
            sig.span(),
            "a hook is historic or firstresult, not both: a replay to a later plugin \
             has no first result to stop at",
        );
    }
    if options.historic && is_async {
        return err(
            sig.span(),
            "a historic hook must be sync: it is replayed inside `register`",
        );
    }
    if !is_async && (options.concurrent || options.timeout_ms.is_some()) {
        return err(
            sig.span(),
            "`concurrent` and `timeout_ms` are for async hooks",
        );
    }
    let (output, collect) = if options.firstresult {
        let Some(answer) = option_inner(&value) else {
            return err(
                ret.span(),
                "a firstresult hook returns HookResult<Option<T>>",
            );
        };
        (
            quote!(::core::option::Option<hookery::Answer<#answer>>),
            quote!(hookery::__private::Collect::FIRST),
        )
    } else {
        (
            quote!(hookery::Results<#value>),
            quote!(hookery::__private::Collect::ALL),
        )
    };
    let docs = method
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .cloned()
        .collect();
    Ok(Hook {
        index,
        name: sig.ident.clone(),
        is_async,
        options,
        args,
        value,
        output,
        collect,
        docs,
    })
}

/// The trait rustdoc shows (`#[cfg(doc)]`): its `async fn`s as written,
/// where the compiled trait has `#[async_trait]`'s boxed futures. An
/// `async fn` makes a trait unusable as `dyn`, which the generated `impl
/// Spec for dyn Trait` is, so each gets `where Self: Sized` (which exempts
/// a method from that rule); only rustdoc sees this trait, and it checks
/// signatures, not bodies.
fn as_written(spec: &ItemTrait) -> ItemTrait {
    let mut doc = spec.clone();
    for item in &mut doc.items {
        if let TraitItem::Fn(method) = item {
            if method.sig.asyncness.is_some() {
                let bound: syn::WherePredicate = parse_quote!(Self: ::core::marker::Sized);
                method
                    .sig
                    .generics
                    .make_where_clause()
                    .predicates
                    .push(bound);
            }
        }
    }
    let note = "Its `async fn` hooks are shown as written. The `where Self: Sized` on them is \
                in this documentation only (rustdoc's view of a trait with `async fn`s used \
                as `dyn`); the compiled trait is `#[async_trait]`'s form of the same \
                methods, callable through `dyn`, and `#[hookimpl]` takes them written as \
                `async fn`.";
    doc.attrs.push(parse_quote!(#[doc = ""]));
    doc.attrs.push(parse_quote!(#[doc = #note]));
    doc.attrs.push(parse_quote!(#[allow(async_fn_in_trait)]));
    doc
}

/// `T` in `HookResult<T>` (or any `Path<T, ...>`).
fn single_generic(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    let PathArguments::AngleBracketed(args) = &path.path.segments.last()?.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    }
}

fn option_inner(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    (path.path.segments.last()?.ident == "Option").then(|| single_generic(ty))?
}

/// The hidden method a wrapper implements: the hook's arguments plus `next`,
/// returning what the call returns.
fn wrapper_decl(trait_name: &syn::Ident, hook: &Hook, sig: &syn::Signature) -> TraitItem {
    let name = wrapper_method(&hook.name);
    let output = &hook.output;
    let next = if hook.is_async {
        quote!(hookery::AsyncNext<'_, #output>)
    } else {
        quote!(hookery::Next<'_, #output>)
    };
    let asyncness = &sig.asyncness;
    let args = hook.args.iter().map(|(n, t)| quote!(#n: #t));
    let (spec_name, hook_name) = (trait_name.to_string(), hook.name.to_string());
    parse_quote! {
        #[doc(hidden)]
        #[allow(unused_variables)]
        #asyncness fn #name(&self, #(#args,)* next: #next) -> hookery::HookResult<#output> {
            hookery::__private::not_implemented(#spec_name, #hook_name)
        }
    }
}

fn hook_spec(hook: &Hook) -> TokenStream {
    let name = hook.name.to_string();
    let (is_async, o) = (hook.is_async, &hook.options);
    let (firstresult, historic, concurrent) = (o.firstresult, o.historic, o.concurrent);
    let on_error = if o.on_continue {
        quote!(hookery::ErrorPolicy::Continue)
    } else {
        quote!(hookery::ErrorPolicy::Propagate)
    };
    let warn_on_impl = match &o.warn_on_impl {
        Some(warning) => quote!(::core::option::Option::Some(#warning)),
        None => quote!(::core::option::Option::None),
    };
    let timeout = match o.timeout_ms {
        Some(ms) => quote!(::core::option::Option::Some(::core::time::Duration::from_millis(#ms))),
        None => quote!(::core::option::Option::None),
    };
    quote! {
        hookery::HookSpec {
            name: #name,
            is_async: #is_async,
            firstresult: #firstresult,
            historic: #historic,
            on_error: #on_error,
            concurrent: #concurrent,
            timeout: #timeout,
            warn_on_impl: #warn_on_impl,
        }
    }
}

fn relay_method(hook: &Hook, trait_name: &syn::Ident) -> TokenStream {
    let Hook {
        index,
        name,
        output,
        collect,
        docs,
        ..
    } = hook;
    let wrap = wrapper_method(name);
    let params = hook.args.iter().map(|(n, t)| quote!(#n: #t));
    // Every implementation gets its own copy of each argument: references
    // are copied, owned values cloned.
    let pass: Vec<_> = hook
        .args
        .iter()
        .map(|(n, _)| quote!(::core::clone::Clone::clone(&#n)))
        .collect();
    let result = quote!(::core::result::Result<#output, hookery::HookError>);
    let value = &hook.value;
    if hook.is_async {
        // The name the full call's errors give: the spec's table.
        let hook_name = quote!(<dyn #trait_name as hookery::Spec>::HOOKS[#index].name);
        return quote! {
            #(#docs)*
            ///
            /// The call runs on the plugins registered when this method is
            /// called, not when its future is first polled; its depth is
            /// judged where it is polled.
            pub fn #name(&self, #(#params),*) -> impl ::core::future::Future<Output = #result> {
                if let ::core::option::Option::Some(call) = self.0.idle_async(#index, #hook_name, #collect) {
                    return hookery::__private::AsyncCall::Idle { call };
                }
                let __hookery_snapshot = self.0.snapshot();
                hookery::__private::AsyncCall::Called {
                    call: hookery::__private::OutOfLine::new(async move {
                        self.0.call_async(
                            &__hookery_snapshot,
                            #index,
                            |p| p.#name(#(#pass),*),
                            |p, next| p.#wrap(#(#pass,)* next),
                            #collect,
                        ).await
                    }),
                }
            }
        };
    }
    let call = quote! {
        caller.call::<#value, #output>(
            #index,
            |p| p.#name(#(#pass),*),
            |p, next| p.#wrap(#(#pass,)* next),
            #collect,
        )
    };
    if hook.options.historic {
        let with_results = format_ident!("{}_with_results", name);
        let with_doc = format!(
            "[`{name}`](Self::{name}), and `result_callback` receives each value \
             this call returns and, later, each value a replay to a newly \
             registered plugin returns (pluggy's `call_historic(result_callback=...)`)."
        );
        let params: Vec<_> = params.collect();
        return quote! {
            #(#docs)*
            ///
            /// Historic: this call is remembered and replayed to plugins registered later.
            pub fn #name(&self, #(#params),*) -> #result {
                self.0.call_historic(#index, move |caller| #call, |_| {})
            }

            #[doc = #with_doc]
            pub fn #with_results(
                &self,
                #(#params,)*
                result_callback: impl ::core::ops::Fn(&hookery::Answer<#value>)
                    + ::core::marker::Send + ::core::marker::Sync + 'static,
            ) -> #result {
                self.0.call_historic(#index, move |caller| #call, result_callback)
            }
        };
    }
    quote! {
        #(#docs)*
        pub fn #name(&self, #(#params),*) -> #result {
            let caller = &self.0;
            #call
        }
    }
}

#[cfg(all(test, feature = "async"))]
mod tests {
    use quote::quote;
    use syn::{Item, TraitItem};

    /// The two traits of a spec with an async hook, by their `cfg`.
    #[test]
    fn rustdoc_sees_async_hooks_as_written_and_the_compiler_the_async_trait_form() {
        let spec = quote! {
            /// Events.
            pub trait Events {
                async fn saved(&self, id: u32) -> HookResult<u32>;
                fn counted(&self) -> HookResult<u32>;
            }
        };
        let file: syn::File = syn::parse2(super::expand(quote!(), spec).unwrap()).unwrap();
        let traits: Vec<_> = file
            .items
            .iter()
            .filter_map(|item| match item {
                Item::Trait(t) => Some(t),
                _ => None,
            })
            .collect();
        let attr = |t: &syn::ItemTrait, path: &str| {
            t.attrs
                .iter()
                .map(|a| quote!(#a).to_string().replace(' ', ""))
                .any(|a| a == path)
        };
        let [doc, compiled] = traits[..] else {
            panic!("two traits expected, got {}", traits.len())
        };
        assert!(attr(doc, "#[cfg(doc)]") && !attr(doc, "#[hookery::async_trait]"));
        assert!(attr(compiled, "#[cfg(not(doc))]") && attr(compiled, "#[hookery::async_trait]"));
        let signature = |name: &str| {
            doc.items.iter().find_map(|item| match item {
                TraitItem::Fn(f) if f.sig.ident == name => Some(f.sig.clone()),
                _ => None,
            })
        };
        let saved = signature("saved").unwrap();
        assert_eq!(
            quote!(#saved).to_string().replace(' ', ""),
            "asyncfnsaved(&self,id:u32)->HookResult<u32>whereSelf:::core::marker::Sized"
        );
        let counted = signature("counted").unwrap();
        assert!(counted.asyncness.is_none() && counted.generics.where_clause.is_none());
        assert!(signature("saved_wrapper").unwrap().asyncness.is_some());
    }
}
