//! `#[ferrite::main]`: makes a function the entry point of a Ferrite application. The function
//! stays as written; beside it the macro registers a job in the image (`.ferrite_apps`), named
//! after the application, whose entry runs the function and turns what it returns into the
//! machine's exit status (see `ferrite::Termination`). Owns only this expansion: it names items
//! of `ferrite` through `::ferrite::__rt`, never the kernel.
#![forbid(unsafe_code)]

use proc_macro::TokenStream;
use quote::quote;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, ItemFn, Lit, Meta, Token};

/// Makes `fn main()` (or `fn main() -> Result<(), E>`, or `-> ferrite::ExitStatus`) an
/// application's entry point.
///
/// Arguments, all optional: `name = "..."`, what `run=` selects (default: the package name);
/// `about = "..."`, one line for the boot log (default: the package description); `options =
/// PATH`, a `&'static [ferrite::AppOption]` the boot checks the command line's
/// `<name>.<key>=<value>` against before `main` runs.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    match expand(args.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(
    args: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let function: ItemFn = syn::parse2(item)?;
    if !function.sig.inputs.is_empty() {
        return Err(syn::Error::new_spanned(
            &function.sig.inputs,
            "#[ferrite::main] takes a function without arguments (see ferrite::env for the command line)",
        ));
    }
    if function.sig.asyncness.is_some() || !function.sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &function.sig,
            "#[ferrite::main] takes a plain, non-generic, non-async function",
        ));
    }
    let mut name = quote!(env!("CARGO_PKG_NAME"));
    let mut about = quote!(env!("CARGO_PKG_DESCRIPTION"));
    let mut options = quote!(&[]);
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
    for meta in metas {
        let Meta::NameValue(nv) = &meta else {
            return Err(syn::Error::new_spanned(
                meta,
                "expected `name = \"...\"`, `about = \"...\"` or `options = PATH`",
            ));
        };
        let key = nv
            .path
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        let value = &nv.value;
        let string = |what: &str| match value {
            Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) => Ok(quote!(#s)),
            _ => Err(syn::Error::new_spanned(
                value,
                format!("`{what}` takes a string"),
            )),
        };
        match key.as_str() {
            "name" => name = string("name")?,
            "about" => about = string("about")?,
            "options" => options = quote!(#value),
            _ => {
                return Err(syn::Error::new_spanned(
                    &nv.path,
                    "unknown argument: expected name, about or options",
                ))
            }
        }
    }
    let main = &function.sig.ident;
    Ok(quote! {
        #function

        const _: () = {
            fn __ferrite_entry(
                _kernel: &'static ::ferrite::__rt::Kernel,
            ) -> ::ferrite::__rt::JobStatus {
                ::ferrite::__rt::report(#main())
            }
            ::ferrite::__rt::register_app!(::ferrite::__rt::Job {
                name: #name,
                about: #about,
                main: __ferrite_entry,
                options: #options,
            });
        };
    })
}
