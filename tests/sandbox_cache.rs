//! A node restart reuses the compiled-code cache: the second sandbox on the
//! same cache directory loads native code and compiles nothing.

mod sandbox_support;

use serde_json::json;
use vigil::sandbox::capabilities::{Capabilities, Limits};
use vigil::sandbox::CacheStats;

use sandbox_support::*;

#[test]
fn a_restart_loads_compiled_code_instead_of_recompiling() {
    let tmp = temp_dir();
    let caps = Capabilities::default();
    {
        let first = sandbox(tmp.path());
        let echo = load(&first, "echo", &caps, Limits::default());
        ok_value(&echo.call("echo", &json!(1)));
        assert_eq!(
            first.cache_stats(),
            CacheStats {
                compiled: 1,
                loaded: 0
            }
        );
    }
    let restarted = sandbox(tmp.path());
    let echo = load(&restarted, "echo", &caps, Limits::default());
    assert_eq!(ok_value(&echo.call("echo", &json!(2)))["echo"], 2);
    assert_eq!(
        restarted.cache_stats(),
        CacheStats {
            compiled: 0,
            loaded: 1
        }
    );

    // A different package is a different entry.
    load(&restarted, "wordcount", &caps, Limits::default());
    assert_eq!(
        restarted.cache_stats(),
        CacheStats {
            compiled: 1,
            loaded: 1
        }
    );
}
