//! Self-tests of the reports' values against their text (`run=selftest`): a program reading
//! `ferrite::proc::*_values` must see what `/proc`'s text says. The text is produced by the
//! mechanisms' own formatting, the values by procfs, so a drift between the two is caught here.
// No unsafe code here; the `ktest!` registrations are link-section statics, which `forbid(unsafe_code)` would refuse.

use alloc::string::String;
use alloc::vec::Vec;

use crate::ktest::TestError;
use crate::{kassert, kassert_eq, ktest};

fn fail(what: impl core::fmt::Display) -> TestError {
    TestError::Fail(alloc::format!("{what}"))
}

/// The whitespace-separated numbers of a line after its first `skip` words.
fn numbers(line: &str, skip: usize) -> Result<Vec<u64>, TestError> {
    line.split_whitespace()
        .skip(skip)
        .filter(|w| *w != ":" && !w.chars().all(|c| c.is_ascii_alphabetic()))
        .map(|w| {
            w.parse()
                .map_err(|_| fail(alloc::format!("'{w}' in '{line}' is not a number")))
        })
        .collect()
}

ktest!(procfs_buddyinfo_values_match_the_text, {
    // The text's own allocations may take a page from the buddy lists: compare a text with
    // values that did not change around it.
    for _ in 0..5 {
        let before = crate::procfs::buddyinfo_values();
        let text: String = crate::procfs::buddyinfo();
        let after = crate::procfs::buddyinfo_values();
        if before != after {
            continue;
        }
        let lines: Vec<&str> = text.lines().collect();
        kassert_eq!(lines.len(), before.len());
        kassert!(!before.is_empty());
        for (line, zone) in lines.iter().zip(&before) {
            // "Node 0, zone      DMA      1      0 ..."
            let words: Vec<&str> = line.split_whitespace().collect();
            kassert_eq!(words.get(3).copied(), Some(zone.zone));
            kassert_eq!(numbers(line, 4)?, zone.free);
        }
        return Ok(());
    }
    Err(fail("the buddy lists changed on every try"))
});

ktest!(procfs_slabinfo_values_match_the_text, {
    let values = crate::procfs::slabinfo_values();
    let text = crate::procfs::slabinfo();
    let rows: Vec<&str> = text.lines().skip(2).collect();
    kassert!(!values.is_empty());
    kassert_eq!(rows.len(), values.len());
    for (row, cache) in rows.iter().zip(&values) {
        kassert_eq!(row.split_whitespace().next(), Some(cache.name));
        // name active num objsize objperslab pagesperslab : tunables 0 0 0 : slabdata active num 0
        let n = numbers(row, 1)?;
        kassert_eq!(n.len(), 11);
        // The object counts move with the text's own allocations; the geometry does not.
        kassert_eq!(
            (n[2], n[3], n[4]),
            (cache.objsize, cache.objperslab, cache.pagesperslab)
        );
        kassert!(cache.active_objs <= cache.num_objs);
        kassert_eq!(cache.num_objs, cache.num_slabs * cache.objperslab);
    }
    Ok(())
});

ktest!(procfs_swaps_values_match_the_text, {
    let values = crate::procfs::swaps_values();
    let text = crate::procfs::swaps();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    kassert_eq!(rows.len(), values.len());
    for (row, area) in rows.iter().zip(&values) {
        let fields: Vec<&str> = row.split('\t').filter(|f| !f.is_empty()).collect();
        kassert_eq!(fields.len(), 5);
        kassert_eq!(fields[0], area.filename.as_str());
        kassert_eq!(fields[1], area.kind);
        kassert_eq!(fields[2].parse::<u64>().ok(), Some(area.size_kib));
        kassert_eq!(fields[3].parse::<u64>().ok(), Some(area.used_kib));
        kassert_eq!(fields[4].parse::<i32>().ok(), Some(area.priority));
        kassert!(area.used_kib <= area.size_kib);
    }
    Ok(())
});
