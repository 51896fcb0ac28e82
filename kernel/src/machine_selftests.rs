//! Self-tests of the machine description against the machine we are running on: the booted image
//! and tree are RAM and reserved, the banks are well formed, describing the tree again gives the
//! same machine, the CPUs and the way out are known. They live beside `kernel.rs`, not in
//! `src/machine`, because they need the booted kernel (its image, the tree's address) and the
//! architecture's view of the tree blob, while `src/machine` names nothing but `addr`.

use crate::arch::aarch64::boot;
use crate::kernel;
use crate::ktest::TestError;
use crate::machine::{BootRanges, Machine};
use crate::{kassert, kassert_eq, ktest};

fn k() -> Result<&'static kernel::Kernel, TestError> {
    kernel::get().ok_or(TestError::Fail("kernel state not published".into()))
}

ktest!(image_and_tree_are_ram_and_reserved, {
    let k = k()?;
    let m = &k.machine;
    kassert!(!m.memory.is_empty());
    let bank = m.bank_of(k.boot.image.base);
    kassert!(
        bank.is_some_and(|b| b.covers(&k.boot.image)),
        "image {} outside RAM",
        k.boot.image
    );
    kassert_eq!(m.boot.image, Some(k.boot.image));
    let dtb = m.boot.dtb.expect("dtb range recorded");
    kassert_eq!(dtb.base, k.boot.dtb);
    kassert!(m
        .reservations()
        .iter()
        .any(|(r, _)| r.covers(&k.boot.image)));
    Ok(())
});

ktest!(banks_sorted_disjoint_and_nonempty, {
    let m = &k()?.machine;
    for pair in m.memory.windows(2) {
        kassert!(
            pair[0].end() < pair[1].base.as_u64() as u128,
            "{} and {} touch",
            pair[0],
            pair[1]
        );
    }
    kassert!(m.memory.iter().all(|b| b.size > 0));
    kassert!(m.reserved_bytes() < m.ram_bytes());
    Ok(())
});

ktest!(describing_again_gives_the_same_machine, {
    let k = k()?;
    let blob = boot::device_tree_blob(k.boot.dtb).ok_or(TestError::Fail("tree vanished".into()))?;
    let again = Machine::from_blob(
        blob,
        BootRanges {
            image: Some(k.boot.image),
            dtb: k.machine.boot.dtb,
        },
    )
    .map_err(|e| TestError::Fail(alloc::format!("{e}")))?;
    kassert!(again == k.machine);
    Ok(())
});

ktest!(cpus_and_exit_path_known, {
    let m = &k()?.machine;
    kassert!(m.cpus >= 1, "no CPUs described");
    kassert!(
        m.psci_method.is_some() || m.cpu_enable_method.as_deref() == Some("spin-table"),
        "neither PSCI nor spin-table"
    );
    Ok(())
});
