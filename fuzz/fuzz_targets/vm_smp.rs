//! libFuzzer entry point of the `vm_smp` target; the logic is
//! [`myos_fuzz::vm_smp::run`], shared with the stable corpus replay.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    myos_fuzz::report_at_exit();
    myos_fuzz::vm_smp::run(data)
});
