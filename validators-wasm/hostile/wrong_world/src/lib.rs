//! A component for a world that is not kiln's (`acme:greeter`, exporting a
//! lone `greet` function). kiln's tests declare it as a validator type and
//! expect it refused with a message saying what it exports instead.

wit_bindgen::generate!({ world: "greeter", path: "wit" });

struct Greeter;

impl Guest for Greeter {
    fn greet(name: String) -> String {
        format!("hello, {name}")
    }
}

export!(Greeter);
