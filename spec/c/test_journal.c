/*
** test_journal.c -- the outage journal: a bounded key set plus patterns.
*/
#include "journal.h"

#include <stdio.h>
#include <string.h>

#include "test.h"

static bool batch_has_key(const JournalBatch *b, const char *key, size_t klen)
{
    for (size_t i = 0; i < b->nkeys; i++)
        if (b->klens[i] == klen && memcmp(b->keys[i], key, klen) == 0)
            return true;
    return false;
}

static void test_journal_records_each_key_once(void)
{
    Journal *j = journal_new(10, 10);
    ASSERT_TRUE(journal_empty(j));
    journal_key(j, "a", 1);
    journal_key(j, "a", 1);
    journal_key(j, "b\0c", 3);
    ASSERT_FALSE(journal_empty(j));
    JournalBatch b;
    journal_take(j, &b);
    ASSERT_FALSE(b.overflow);
    ASSERT_EQ_INT(2, b.nkeys);
    ASSERT_TRUE(batch_has_key(&b, "a", 1));
    ASSERT_TRUE(batch_has_key(&b, "b\0c", 3));
    ASSERT_TRUE(journal_empty(j));
    journal_batch_free(&b);
    journal_free(j);
}

static void test_journal_keeps_patterns_in_order(void)
{
    Journal *j = journal_new(10, 10);
    journal_pattern(j, "user:*", 6);
    journal_pattern(j, "*", 1);
    JournalBatch b;
    journal_take(j, &b);
    ASSERT_EQ_INT(2, b.npatterns);
    ASSERT_EQ_MEM("user:*", 6, b.patterns[0], b.plens[0]);
    ASSERT_EQ_MEM("*", 1, b.patterns[1], b.plens[1]);
    journal_batch_free(&b);
    journal_free(j);
}

static void test_journal_overflows_past_max_keys_and_forgets_details(void)
{
    Journal *j = journal_new(3, 10);
    char key[8];
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        journal_key(j, key, strlen(key));
    }
    JournalBatch b;
    journal_take(j, &b);
    ASSERT_TRUE(b.overflow);
    ASSERT_EQ_INT(0, b.nkeys);
    ASSERT_EQ_INT(0, b.npatterns);
    ASSERT_TRUE(journal_empty(j)); /* taking resets the overflow */
    journal_batch_free(&b);
    journal_free(j);
}

static void test_journal_overflows_past_max_patterns(void)
{
    Journal *j = journal_new(10, 2);
    journal_pattern(j, "a*", 2);
    journal_pattern(j, "b*", 2);
    ASSERT_FALSE(journal_empty(j));
    journal_pattern(j, "c*", 2);
    JournalBatch b;
    journal_take(j, &b);
    ASSERT_TRUE(b.overflow);
    journal_batch_free(&b);
    journal_free(j);
}

static void test_journal_restore_merges_a_failed_batch_with_new_changes(void)
{
    Journal *j = journal_new(10, 10);
    journal_key(j, "old", 3);
    journal_pattern(j, "p*", 2);
    JournalBatch b;
    journal_take(j, &b);
    journal_key(j, "new", 3);
    journal_key(j, "old", 3);
    journal_restore(j, &b);
    ASSERT_EQ_INT(0, b.nkeys); /* the batch was consumed */
    JournalBatch again;
    journal_take(j, &again);
    ASSERT_EQ_INT(2, again.nkeys);
    ASSERT_TRUE(batch_has_key(&again, "old", 3));
    ASSERT_TRUE(batch_has_key(&again, "new", 3));
    ASSERT_EQ_INT(1, again.npatterns);
    journal_batch_free(&again);
    journal_free(j);
}

static void test_journal_restore_of_an_overflowed_batch_overflows(void)
{
    Journal *j = journal_new(1, 10);
    journal_key(j, "a", 1);
    journal_key(j, "b", 1);
    JournalBatch b;
    journal_take(j, &b);
    ASSERT_TRUE(b.overflow);
    journal_key(j, "c", 1);
    journal_restore(j, &b);
    JournalBatch again;
    journal_take(j, &again);
    ASSERT_TRUE(again.overflow);
    journal_batch_free(&again);
    journal_free(j);
}

static void test_journal_hot_key_written_often_does_not_overflow(void)
{
    Journal *j = journal_new(3, 10);
    for (int i = 0; i < 10000; i++)
        journal_key(j, i % 2 ? "hot" : "cold", i % 2 ? 3 : 4);
    JournalBatch b;
    journal_take(j, &b);
    ASSERT_FALSE(b.overflow);
    ASSERT_EQ_INT(2, b.nkeys);
    ASSERT_TRUE(batch_has_key(&b, "hot", 3));
    ASSERT_TRUE(batch_has_key(&b, "cold", 4));
    journal_batch_free(&b);
    journal_free(j);
}

static void test_journal_records_a_pattern_once(void)
{
    Journal *j = journal_new(10, 2);
    for (int i = 0; i < 100; i++)
        journal_pattern(j, "video:*", 7);
    JournalBatch b;
    journal_take(j, &b);
    ASSERT_FALSE(b.overflow);
    ASSERT_EQ_INT(1, b.npatterns);
    journal_batch_free(&b);
    journal_free(j);
}

static void test_journal_holds_exactly_max_keys_without_overflowing(void)
{
    Journal *j = journal_new(3, 10);
    for (int i = 0; i < 100; i++)
        journal_key(j, (const char *[]){"a", "b", "c"}[i % 3], 1);
    JournalBatch b;
    journal_take(j, &b);
    ASSERT_FALSE(b.overflow);
    ASSERT_EQ_INT(3, b.nkeys);
    journal_batch_free(&b);
    journal_free(j);
}

static const TestCase cases[] = {
    TEST_CASE(test_journal_holds_exactly_max_keys_without_overflowing),
    TEST_CASE(test_journal_hot_key_written_often_does_not_overflow),
    TEST_CASE(test_journal_records_a_pattern_once),
    TEST_CASE(test_journal_records_each_key_once),
    TEST_CASE(test_journal_keeps_patterns_in_order),
    TEST_CASE(test_journal_overflows_past_max_keys_and_forgets_details),
    TEST_CASE(test_journal_overflows_past_max_patterns),
    TEST_CASE(test_journal_restore_merges_a_failed_batch_with_new_changes),
    TEST_CASE(test_journal_restore_of_an_overflowed_batch_overflows),
    {NULL, NULL},
};

TEST_MAIN(cases)
