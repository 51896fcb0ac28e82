//! Host tests of the slab allocator (written next).

#[test]
fn placeholder_replaced_by_the_real_tests() {
    assert_eq!(super::SLAB_DEBUG_ALL, 7);
}
