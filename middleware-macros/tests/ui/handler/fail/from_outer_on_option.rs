use middleware_macros::handler;
use middleware_std::auth::Principal;

#[handler]
async fn hello(#[from_outer] who: Option<Principal>) -> String {
    who.map_or_else(String::new, |who| who.id().to_owned())
}

fn main() {}
