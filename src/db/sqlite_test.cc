#include "db/sqlite.h"

#include <cstdio>
#include <filesystem>

#include "base/str.h"
#include "gtest/gtest.h"

namespace isthmus::db {
namespace {

TEST(SqliteTest, BindStepAndColumns) {
  auto conn = OpenSqlite(":memory:");
  ASSERT_TRUE(conn.ok()) << conn.status();
  ASSERT_TRUE((*conn)->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, raw BLOB)").ok());
  auto ins = (*conn)->Prepare("INSERT INTO t (name, raw) VALUES (?, ?)");
  ASSERT_TRUE(ins.ok());
  (*ins)->BindText(1, "a");
  (*ins)->BindBlob(2, std::string_view("x\0y", 3));
  ASSERT_TRUE((*ins)->Step().ok());
  EXPECT_EQ((*conn)->LastInsertId(), 1);
  auto sel = (*conn)->Prepare("SELECT id, name, raw FROM t");
  ASSERT_TRUE(sel.ok());
  auto row = (*sel)->Step();
  ASSERT_TRUE(row.ok() && *row);
  EXPECT_EQ((*sel)->ColumnInt64(0), 1);
  EXPECT_EQ((*sel)->ColumnText(1), "a");
  EXPECT_EQ((*sel)->ColumnText(2), std::string_view("x\0y", 3));
  row = (*sel)->Step();
  ASSERT_TRUE(row.ok());
  EXPECT_FALSE(*row);
}

int64_t PragmaValue(Connection& c, std::string_view pragma) {
  auto q = c.Prepare(base::StrCat("PRAGMA ", pragma));
  EXPECT_TRUE(q.ok()) << q.status();
  if (!q.ok()) return -999;
  auto row = (*q)->Step();
  EXPECT_TRUE(row.ok() && *row);
  return (*q)->ColumnInt64(0);
}

TEST(SqliteTest, PageCacheFollowsTheOptions) {
  // cache_size reads back as the negative KiB it was set to; by default (0) it is SQLite's own
  // default, -2000 (2,000 KiB).
  auto big = OpenSqlite(":memory:", {.cache_kib = 256 * 1024});
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(PragmaValue(**big, "cache_size"), -256 * 1024);
  auto plain = OpenSqlite(":memory:");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(PragmaValue(**plain, "cache_size"), -2000);
  EXPECT_EQ(OpenSqlite(":memory:", {.cache_kib = -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SqliteTest, CachedStatementsAreReusedAndReset) {
  auto conn = OpenSqlite(":memory:");
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE((*conn)->Exec("CREATE TABLE t (v INTEGER)").ok());
  for (int i = 0; i < 3; ++i) {
    auto ins = (*conn)->PrepareCached("INSERT INTO t VALUES (?)");
    ASSERT_TRUE(ins.ok());
    (*ins)->BindInt64(1, i);
    ASSERT_TRUE((*ins)->Step().ok());
  }
  auto a = (*conn)->PrepareCached("SELECT SUM(v) FROM t");
  auto b = (*conn)->PrepareCached("SELECT SUM(v) FROM t");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  ASSERT_TRUE(*(*b)->Step());
  EXPECT_EQ((*b)->ColumnInt64(0), 3);
}

TEST(SqliteTest, CachedStatementsFollowTheTextNotItsAddress) {
  auto conn = OpenSqlite(":memory:");
  ASSERT_TRUE(conn.ok());
  // One buffer holding different SQL over time, as a reused temporary's address would.
  char sql[32];
  std::snprintf(sql, sizeof sql, "SELECT 1");
  auto one = (*conn)->PrepareCached(std::string_view(sql));
  ASSERT_TRUE(one.ok());
  std::snprintf(sql, sizeof sql, "SELECT 2");
  auto two = (*conn)->PrepareCached(std::string_view(sql));
  ASSERT_TRUE(two.ok());
  EXPECT_NE(*one, *two);
  ASSERT_TRUE(*(*two)->Step());
  EXPECT_EQ((*two)->ColumnInt64(0), 2);
  // The same text from another address is the same statement.
  std::string copy = "SELECT 1";
  auto again = (*conn)->PrepareCached(copy);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *one);
  ASSERT_TRUE(*(*again)->Step());
  EXPECT_EQ((*again)->ColumnInt64(0), 1);
  // Many run-time texts (more than the address table holds) stay correct.
  for (int i = 0; i < 1200; ++i) {
    std::string text = "SELECT " + std::to_string(i % 7);
    auto st = (*conn)->PrepareCached(text);
    ASSERT_TRUE(st.ok());
    ASSERT_TRUE(*(*st)->Step());
    ASSERT_EQ((*st)->ColumnInt64(0), i % 7);
  }
}

TEST(SqliteTest, ConstraintViolationIsAlreadyExists) {
  auto conn = OpenSqlite(":memory:");
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE((*conn)->Exec("CREATE TABLE t (k TEXT UNIQUE)").ok());
  ASSERT_TRUE((*conn)->Exec("INSERT INTO t VALUES ('a')").ok());
  auto ins = (*conn)->Prepare("INSERT INTO t VALUES (?)");
  ASSERT_TRUE(ins.ok());
  (*ins)->BindText(1, "a");
  EXPECT_EQ((*ins)->Step().status().code(), absl::StatusCode::kAlreadyExists);
}

TEST(SqliteTest, MigrationsApplyOnceAndInOrder) {
  auto path = std::filesystem::path(::testing::TempDir()) / "isthmus_migrate_test.db";
  std::filesystem::remove(path);
  std::vector<std::string_view> migrations = {"CREATE TABLE a (x INTEGER)",
                                              "ALTER TABLE a ADD COLUMN y TEXT"};
  {
    auto conn = OpenSqlite(path.string());
    ASSERT_TRUE(conn.ok());
    ASSERT_TRUE(Migrate(**conn, migrations).ok());
    ASSERT_TRUE(Migrate(**conn, migrations).ok());  // idempotent
  }
  migrations.push_back("CREATE TABLE b (z INTEGER)");
  auto conn = OpenSqlite(path.string());
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE(Migrate(**conn, migrations).ok());
  EXPECT_TRUE((*conn)->Exec("INSERT INTO a (x, y) VALUES (1, 'v'); INSERT INTO b VALUES (2)").ok());
  auto q = (*conn)->Prepare("SELECT MAX(version), COUNT(*) FROM schema_version");
  ASSERT_TRUE(q.ok());
  ASSERT_TRUE(*(*q)->Step());
  EXPECT_EQ((*q)->ColumnInt64(0), 3);
  EXPECT_EQ((*q)->ColumnInt64(1), 3);
}

TEST(SqliteTest, FailedMigrationRollsBackAndNamesVersion) {
  auto conn = OpenSqlite(":memory:");
  ASSERT_TRUE(conn.ok());
  absl::Status s = Migrate(**conn, {"CREATE TABLE a (x)", "THIS IS NOT SQL"});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("schema migration 2"), std::string::npos);
  auto q = (*conn)->Prepare("SELECT MAX(version) FROM schema_version");
  ASSERT_TRUE(q.ok());
  ASSERT_TRUE(*(*q)->Step());
  EXPECT_EQ((*q)->ColumnInt64(0), 1);
}

}  // namespace
}  // namespace isthmus::db
