/* test-mime */
int main(void) { return 77; }
