/* test-store-kv */
int main(void) { return 77; }
